"""serve stops on a signal whichever of its threads the kernel hands it to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flowscope.cli_common import SLOW_OPEN_BYTES
from flowscope.store.database import Database
from flowscope.store.wal_keeper import wal_path
from flowscope.testing.server import serve_command, start_server_process
from flowscope.testing.thread_signal import TGKILL, signal_another_thread


@pytest.mark.skipif(os.uname().machine not in TGKILL, reason="tgkill's number is per machine")
def test_a_sigterm_handed_to_another_thread_stops_serve(tmp_path: Path) -> None:
    """The main thread waited for the stop without a timeout, and Python runs a handler
    only in the main thread: a SIGTERM the kernel gave another thread left serve up for
    good (a CI run's stop timed out; its main thread was still waiting 10 minutes on)."""
    server = start_server_process(tmp_path / "stop.duckdb")
    try:
        signal_another_thread(server.process.pid, signal.SIGTERM)
        assert server.process.wait(30) == 0
    except subprocess.TimeoutExpired:
        server.stop(signal.SIGKILL)
        raise
    server.stop()
    assert any("stopped" in line for line in server.output), server.output


# Spans a server stored without stopping cleanly: their WAL, over SLOW_OPEN_BYTES.
LEFT_BEHIND = """
import os, sys
from flowscope.collector.decode import decode
from flowscope.store.database import Database
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import realistic_request
writer = SpanWriter(Database(sys.argv[1]), derive_interval_s=None)
writer.start()
acknowledged = 0
for seed in range(80):
    batch = decode(realistic_request(200, seed=seed).SerializeToString()).batch
    acknowledged += writer.submit(batch.table, batch.keys).result()
print(acknowledged, flush=True)
os._exit(0)  # no close, no checkpoint: as a killed server leaves the file
"""


def test_a_slow_open_is_announced_and_a_stop_asked_during_it_prints_no_ready(
    tmp_path: Path,
) -> None:
    """A restart after a crash of a 5 GB file printed nothing for 60-100 s while DuckDB
    replayed and checkpointed its WAL; a SIGTERM meanwhile was taken only after, and
    the full "ready" banner came before the stop (review)."""
    db = tmp_path / "crashed.duckdb"
    made = subprocess.run(
        [sys.executable, "-c", LEFT_BEHIND, str(db)], capture_output=True, text=True, timeout=300
    )
    assert made.returncode == 0, made.stderr
    stored = int(made.stdout.strip())
    assert wal_path(str(db)).stat().st_size > SLOW_OPEN_BYTES
    process = subprocess.Popen(
        serve_command(db, "--retention", "off"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    said: list[str] = []
    try:
        for line in process.stdout:
            said.append(line)
            if "left by a server that did not stop cleanly" in line or line.startswith("ready"):
                process.send_signal(signal.SIGTERM)  # DuckDB's replay follows the first
                break
        said.extend(process.stdout)
        assert process.wait(120) == 0, said
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
    announced = next(line for line in said if "left by a server" in line)
    assert "write-ahead log holds" in announced and "MB" in announced
    assert not any(line.startswith("ready") for line in said), said
    assert any("asked to stop while starting" in line for line in said), said
    database = Database(db, read_only=True)
    try:
        assert database.stored_span_count() == stored  # and nothing was lost
    finally:
        database.close()
