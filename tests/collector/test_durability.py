"""Acknowledged means durable: SIGKILL right after the acks loses nothing."""

from __future__ import annotations

import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from flowscope.store.database import Database
from flowscope.testing.posting import post_realistic
from flowscope.testing.server import serve_command, start_server_process
from flowscope.testing.waiting import wait_until


def _send(base: str, seed: int) -> int:
    return post_realistic(base, seed, 50)


def test_acknowledged_spans_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "durable.duckdb"
    server = start_server_process(db)
    try:
        with ThreadPoolExecutor(8) as pool:
            acked = sum(pool.map(lambda s: _send(server.endpoints.http, s), range(40)))
    finally:
        code = server.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    # multiprocessing's resource tracker, left behind, said "There appear to be 5 leaked
    # semaphore objects to clean up at shutdown": it read as damage.
    assert "leaked" not in "".join(server.output)
    reopened = Database(db)
    try:
        assert reopened.span_count() == acked == 40 * 50 * 8
    finally:
        reopened.close()


def test_sigterm_flushes_and_exits_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "clean.duckdb"
    server = start_server_process(db)
    health = httpx.get(f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()
    assert health["spans"] == 0 and health["writer_queue_spans"] == 0
    assert health["derivation"] == {
        "pending_traces": 0,
        "passes": 0,
        "failures": 0,
        "set_aside_traces": 0,
        "last_pass_age_s": None,
        "last_error": None,
    }
    sent = _send(server.endpoints.http, 1)
    assert (
        httpx.get(f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()[
            "spans"
        ]
        == sent
    )

    # The derive thread takes the spans in within its 1 s cadence. (A pass's commit
    # shows before its count and age do: wait for all three.)
    def derivation() -> dict[str, Any]:
        state: dict[str, Any] = httpx.get(
            f"{server.endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60
        ).json()["derivation"]
        return state

    wait_until(
        lambda: (
            (d := derivation())["pending_traces"] == 0
            and d["passes"] >= 1
            and d["last_pass_age_s"] is not None
        ),
        "the first derive pass",
    )
    derived = derivation()
    assert derived["pending_traces"] == 0 and derived["passes"] >= 1
    assert derived["failures"] == 0
    assert 0 <= derived["last_pass_age_s"] < 60
    assert Path(f"{db}.server.json").exists()
    assert server.stop(signal.SIGTERM) == 0
    assert "stopped" in "".join(server.output)
    assert not Path(f"{db}.server.json").exists()
    reopened = Database(db, read_only=True)
    try:
        assert reopened.span_count() == sent
    finally:
        reopened.close()


def test_a_closed_standard_output_stops_the_server_instead_of_hanging_it(tmp_path: Path) -> None:
    # The reader of `flowscope serve`'s output goes away before its first line.
    # The start-up lines then fail, and the main thread once left without stopping
    # the ingest process, so the exit waited for that process for good.
    db = tmp_path / "headless.duckdb"
    process = subprocess.Popen(
        serve_command(db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    try:
        _, errors = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("serve kept running with its standard output closed") from None
    assert process.returncode == 1, errors
    assert "standard output was closed" in errors and "flowscope: stopped" in errors
    assert "Traceback" not in errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["headless.duckdb"]
