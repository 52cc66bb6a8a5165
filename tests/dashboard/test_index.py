"""The address `serve` and `demo` print answers with where to go, not 404."""

from __future__ import annotations

from pathlib import Path

import httpx

from flowscope.testing.server import server_in_process


def test_root_lists_the_api_and_every_link_answers(tmp_path: Path) -> None:
    with server_in_process(tmp_path / "spans.duckdb", decode_workers=0) as (_server, endpoints):
        index = httpx.get(f"{endpoints.ui}/")
        assert index.status_code == 200
        body = index.json()
        assert "not built yet" in body["pages"]
        links = [v for k, v in body.items() if k not in ("flowscope", "pages", "sql")]
        for link in links:
            assert link.startswith(endpoints.ui)
            assert httpx.get(link).status_code == 200, link
