"""Finding the server that holds a database file (``<db>.server.json``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from flowscope.cli_common import running_server
from flowscope.testing.ports import free_port
from flowscope.testing.server import server_in_process


def test_the_server_named_in_the_file_is_used_once_it_confirms(tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    with server_in_process(db, ingest_process=False) as (server, endpoints):
        found = running_server(str(db))
        assert found is not None and found.ui_url == endpoints.ui
        assert found.otlp_http_url == endpoints.http

        # A file a killed server left, naming ports that another server holds now:
        # before, imports and queries of this file went to that server's database.
        stale = tmp_path / "killed.duckdb"
        info = json.loads(Path(f"{db}.server.json").read_text(encoding="utf-8"))
        Path(f"{stale}.server.json").write_text(
            json.dumps({**info, "pid": os.getpid() + 100_000}), encoding="utf-8"
        )
        assert running_server(str(stale)) is None
    # ... or ports nothing listens on any more.
    gone = {**info, "ui_url": f"http://127.0.0.1:{free_port()}"}
    Path(f"{stale}.server.json").write_text(json.dumps(gone), encoding="utf-8")
    assert running_server(str(stale)) is None
    assert running_server(str(tmp_path / "never-served.duckdb")) is None
