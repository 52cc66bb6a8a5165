"""/healthz's store statistics: what the file takes on disk, against the file itself."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from flowscope.collector.ingest_process import IngestProcess
from flowscope.store import database as database_module
from flowscope.store.database import Database
from flowscope.testing.otlp import realistic_request
from flowscope.testing.posting import post_realistic
from flowscope.testing.server import server_in_process
from flowscope.testing.waiting import wait_until

HEADER_BYTES = 3 * 4096  # DuckDB's file header blocks, before the data blocks


def test_health_reports_the_file_its_blocks_and_bytes_per_span(tmp_path: Path) -> None:
    db = tmp_path / "health.duckdb"
    with server_in_process(db, decode_workers=0) as (server, endpoints):
        sent = sum(post_realistic(endpoints.http, seed, traces=20) for seed in range(3))
        body = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()
        writer = server.writer
        assert writer is not None

        def checkpointed() -> bool:
            # Refused while a derivation pass holds a write transaction: try again.
            try:
                writer.run_task(lambda cursor: cursor.execute("CHECKPOINT")).result(30)
            except duckdb.TransactionException:
                return False
            return True

        def derived() -> bool:
            health = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()
            return bool(health["derivation"]["pending_traces"] == 0)

        # Nothing writes after this (so the checkpoint's file stays as it is measured).
        wait_until(derived, "derivation to take in every span")
        wait_until(checkpointed, "a checkpoint between derivation passes")
        after_checkpoint = httpx.get(
            f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60
        ).json()["disk"]
        on_disk = db.stat().st_size
    assert body["spans"] == sent
    disk = body["disk"]
    assert set(disk) == {
        "file_bytes",
        "used_bytes",
        "free_bytes",
        "blocks_age_s",
        "wal_bytes",
        "journal_bytes",
        "bytes_per_span",
    }
    assert disk["bytes_per_span"] == round(disk["file_bytes"] / sent, 1)
    # After a checkpoint the WAL is empty and the file is its header and its blocks.
    assert after_checkpoint["wal_bytes"] == 0
    assert after_checkpoint["file_bytes"] == on_disk
    blocks = after_checkpoint["used_bytes"] + after_checkpoint["free_bytes"]
    assert after_checkpoint["file_bytes"] == HEADER_BYTES + blocks
    assert after_checkpoint["used_bytes"] > 0
    assert disk["journal_bytes"] >= 0 and after_checkpoint["journal_bytes"] >= 0


HELD_USED = 999_999


def test_health_answers_while_a_checkpoint_holds_the_block_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pragma_database_size() waits out a checkpoint: under a flood of 1 MB requests
    /healthz went unanswered for 16 s behind one (a liveness probe restarts such a
    server)."""
    held = threading.Event()

    def checkpointing() -> tuple[int, int, int]:
        held.wait(60)
        return (262144, HELD_USED, 0)

    with server_in_process(tmp_path / "held.duckdb", decode_workers=0) as (server, endpoints):
        post_realistic(endpoints.http, 1, traces=5)
        first = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()
        assert first["disk"]["used_bytes"] is not None and first["disk"]["blocks_age_s"] < 30
        monkeypatch.setattr(server.database._block_counts, "_read", checkpointing)
        try:
            started = time.monotonic()
            answer = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 1}, timeout=60)
            took = time.monotonic() - started
        finally:
            held.set()
    assert answer.status_code == 200 and took < 30
    disk = answer.json()["disk"]
    # The counts read before (not the held read's), and how old they are.
    assert disk["used_bytes"] == first["disk"]["used_bytes"] != 262144 * HELD_USED
    assert disk["blocks_age_s"] > first["disk"]["blocks_age_s"]


def test_a_database_without_a_file_reports_no_disk() -> None:
    database = Database(":memory:")
    try:
        assert database.disk_usage() is None
    finally:
        database.close()


def test_health_asks_the_ingest_process_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with server_in_process(tmp_path / "once.duckdb", decode_workers=0) as (server, endpoints):
        assert isinstance(server.ingest, IngestProcess)
        sent = post_realistic(endpoints.http, 0, 4)
        asked: list[int] = []
        sync = IngestProcess.sync

        def counted(self: IngestProcess, *args: Any) -> Any:
            asked.append(1)
            return sync(self, *args)

        monkeypatch.setattr(IngestProcess, "sync", counted)
        health = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()
        assert len(asked) == 1
        # ... and its answer is as fresh as a second one would be.
        assert health["spans"] == health["ingest"]["accepted_spans"] == sent


def test_the_server_goes_on_checkpointing_after_health_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read left half-read kept its snapshot for good, and DuckDB then never checkpointed
    # on its own: the WAL and the memory holding it grew without bound (bench/soak.py:
    # 2.4 GB of WAL after 8 minutes at 5,000 spans/s). A small threshold shows it soon.
    monkeypatch.setattr(database_module, "CHECKPOINT_THRESHOLD", "1MB")
    db = tmp_path / "checkpoints.duckdb"
    wal = Path(f"{db}.wal")
    with server_in_process(db, decode_workers=0) as (server, endpoints):
        # As `flowscope serve` does at start on its main thread, which then only waits:
        # this thread makes no other read until the end.
        server.database.span_count()
        httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).raise_for_status()
        sent = 0
        for seed in range(24):
            sent += post_realistic(endpoints.http, seed, traces=200)

        def checkpointed() -> bool:
            # DuckDB checkpoints at a commit with no other transaction open, which a
            # derivation pass may be: each look commits one more trace.
            nonlocal sent
            sent += post_realistic(endpoints.http, 100 + sent, traces=1)
            return not wal.exists() or wal.stat().st_size < 4_000_000

        # Many thresholds of WAL went in since; checkpoints keep it near 1 MB (before the
        # mend it stayed above 4 MB for good).
        wait_until(checkpointed, "a checkpoint")
        assert server.database.span_count() == sent


def test_health_says_degraded_while_commits_fail_and_ok_once_one_lands(tmp_path: Path) -> None:
    """With a full disk every commit failed and was retried, and /healthz said "ok"."""
    with server_in_process(tmp_path / "full.duckdb", decode_workers=0) as (server, endpoints):
        writer = server.writer
        assert writer is not None
        working = writer._insert_sql
        # The database refuses every insert, as a full disk does.
        writer._insert_sql = working.replace("INSERT INTO otel_traces", "INSERT INTO no_such_table")
        sent = post_realistic(endpoints.http, 1, traces=5)  # journalled: acknowledged

        def health() -> Any:
            return httpx.get(f"{endpoints.ui}/healthz", timeout=60)

        wait_until(lambda: health().json()["status"] == "degraded", "a failed commit")
        degraded = health()
        assert degraded.status_code == 200  # alive: a restart would not help
        assert "no_such_table" in degraded.json()["writer"]["last_error"]
        writer._insert_sql = working  # the disk has room again
        wait_until(lambda: health().json()["status"] == "ok", "the retried commit")
        healthy = httpx.get(f"{endpoints.ui}/healthz", params={"wait_s": 30}, timeout=60).json()
    assert healthy["writer"]["last_error"] is None
    assert healthy["spans"] == sent


def test_health_says_degraded_while_the_journal_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that filled while the writer was idle failed the journal's appends: every
    request was refused, and /healthz said "ok" (no commit had failed)."""
    from flowscope.store.journal import Journal

    real_append = Journal.append
    full = [True]

    def append(self: Journal, seq: int, table: Any) -> bytes:
        if full[0]:
            raise OSError(28, "No space left on device")
        return real_append(self, seq, table)

    monkeypatch.setattr(Journal, "append", append)
    db = tmp_path / "full.duckdb"
    with server_in_process(db, decode_workers=0, ingest_process=False) as (_server, endpoints):

        def health() -> Any:
            return httpx.get(f"{endpoints.ui}/healthz", timeout=60).json()

        body = realistic_request(2, seed=1).SerializeToString()
        sent = httpx.post(
            f"{endpoints.http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=60,
        )
        assert sent.status_code == 503 and "No space left" in sent.text  # retry later
        refused = health()
        assert refused["status"] == "degraded"
        assert "No space left on device" in refused["ingest"]["storage_error"]
        # An empty request writes nothing: it says nothing of the disk (it cleared it).
        empty = httpx.post(f"{endpoints.http}/v1/traces", json={"resourceSpans": []}, timeout=60)
        assert empty.status_code == 200 and health()["status"] == "degraded"
        full[0] = False  # room again
        post_realistic(endpoints.http, 2, traces=2)
        stored = health()
    assert stored["status"] == "ok" and stored["ingest"]["storage_error"] is None


def test_health_interrupted_by_a_stop_is_a_503_not_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shutdown after the ingest process died interrupted a health check's read: a
    probe got a 500 and the log a traceback, where the docs promise a 503."""
    with server_in_process(tmp_path / "stop.duckdb", decode_workers=0) as (server, endpoints):
        assert server.database is not None

        def interrupted() -> int:
            raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

        monkeypatch.setattr(server.database, "stored_span_count", interrupted)
        answer = httpx.get(f"{endpoints.ui}/healthz", timeout=60)
    assert answer.status_code == 503
    assert answer.json()["status"] == "stopping" and answer.json()["spans"] is None


def test_health_out_of_memory_is_degraded_not_a_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under --memory-limit 20MB and a load, 1 answer in 200 was the reads' 503 without
    a status: a liveness probe saw a server that was up and storing as down."""
    with server_in_process(tmp_path / "oom.duckdb", decode_workers=0) as (server, endpoints):
        assert server.database is not None

        def out_of_memory() -> int:
            raise duckdb.OutOfMemoryException(
                "Out of Memory Error: could not allocate block of size 256.0 KiB\n\nPossible"
            )

        monkeypatch.setattr(server.database, "stored_span_count", out_of_memory)
        answer = httpx.get(f"{endpoints.ui}/healthz", timeout=60)
        assert answer.status_code == 200
        body = answer.json()
        assert body["status"] == "degraded" and body["spans"] is None
        assert body["partial"] == (
            "the database ran out of memory for this answer (Out of Memory Error: could not "
            "allocate block of size 256.0 KiB): its statistics are left out; ask again shortly"
        )
        # A dead ingest process stays the failure it is (diff review: it read degraded).
        assert isinstance(server.ingest, IngestProcess)
        monkeypatch.setattr(server.ingest, "failed", "the ingest process ended (exit 1)")
        dead = httpx.get(f"{endpoints.ui}/healthz", timeout=60)
        assert dead.status_code == 503 and dead.json()["status"] == "failed"
        assert dead.json()["failure"] == "the ingest process ended (exit 1)"
        monkeypatch.undo()
        assert httpx.get(f"{endpoints.ui}/healthz", timeout=60).json()["status"] == "ok"


def test_health_is_degraded_while_derive_passes_keep_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said ok while every pass failed short of memory, and every /api/flows with
    them (cap review)."""
    from flowscope.analyzer import derived_rows

    def short(spans: Any, ids: dict[int, str]) -> Any:
        raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")

    with server_in_process(tmp_path / "short.duckdb", decode_workers=0) as (server, endpoints):
        assert server.writer is not None and server.writer.deriver is not None
        deriver = server.writer.deriver
        monkeypatch.setattr(derived_rows, "derive_rows", short)
        post_realistic(endpoints.http, 2, traces=2)
        wait_until(lambda: deriver.failing is not None, "three failed passes in a row")
        body = httpx.get(f"{endpoints.ui}/healthz", timeout=60).json()
    assert body["status"] == "degraded"
    assert "could not allocate block" in body["derivation"]["last_error"]


def test_health_says_what_retention_deleted_and_when(tmp_path: Path) -> None:
    """Sweeps log at INFO, hidden by default: whether retention ran was a question for
    SQL. An older file's spans go at the first sweep."""
    from datetime import timedelta

    from flowscope.testing.traces import TraceKit

    db = tmp_path / "old.duckdb"
    kit = TraceKit()  # its traces start in January 2026: past a 7-day retention
    for i in range(3):
        kit.trace(start_ms=i).span("a", "op", kind="Server", start_ms=0, duration_ms=1)
    kit.write_file(db)
    with server_in_process(db, retention=timedelta(days=7)) as (_server, endpoints):

        def health() -> dict[str, Any]:
            body: dict[str, Any] = httpx.get(f"{endpoints.ui}/healthz").json()
            return body

        wait_until(lambda: health()["retention"]["last_sweep"] is not None, "the first sweep")
        retention = health()["retention"]
        assert retention["keep"] == "7d" and retention["every_s"] == 600.0
        assert (retention["last_deleted_spans"], retention["deleted_spans"]) == (3, 3)
        assert retention["last_cutoff"] < retention["last_sweep"]
        assert retention["last_sweep"].endswith("Z") and health()["spans"] == 0
    with server_in_process(db, retention=None) as (_server, endpoints):
        assert "retention" not in httpx.get(f"{endpoints.ui}/healthz").json()
