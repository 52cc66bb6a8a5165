"""The span journal: acknowledged spans survive a crash before DuckDB has them."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from flowscope.collector.flatten import flatten_request
from flowscope.store import writer as writer_module
from flowscope.store.database import Database, StoreError
from flowscope.store.journal import (
    Journal,
    JournalBusy,
    JournalError,
    has_segments,
    journal_path,
    read_segment,
)
from flowscope.store.table_size import table_bytes
from flowscope.store.writer import QueueFull, SpanWriter
from flowscope.testing.otlp import realistic_request


def _batch(seed: int, traces: int = 2) -> tuple[pa.Table, list[bytes]]:
    batch = flatten_request(realistic_request(traces, seed=seed)).batch
    return batch.table, batch.keys


def _stored(database: Database) -> int:
    row = database.reader().execute("SELECT count(*) FROM otel_traces").fetchone()
    return int(row[0]) if row else 0


@contextmanager
def _writer(path: Path, **options: Any) -> Iterator[tuple[Database, SpanWriter]]:
    """A started writer (no derive thread) on a new database, both closed after."""
    database = Database(path)
    writer = SpanWriter(database, derive_interval_s=None, **options)
    writer.start()
    try:
        yield database, writer
    finally:
        writer.shutdown()
        database.close()


@contextmanager
def _held(writer: SpanWriter) -> Iterator[None]:
    """Keep the writer thread in a task: nothing moves from the journal meanwhile."""
    started, release = threading.Event(), threading.Event()

    def hold(_cursor: Any) -> None:
        started.set()
        release.wait(60)

    done = writer.run_task(hold)
    assert started.wait(30)
    try:
        yield
    finally:
        release.set()
        done.result(30)


def test_a_retry_is_answered_no_sooner_than_its_first_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose spans were all seen was answered at once: before the first
    copies were committed (``write``), or on disk in the journal (an OTLP request)."""
    with _writer(tmp_path / "db.duckdb") as (database, writer):
        table, keys = _batch(1)
        with _held(writer):
            first = writer.submit(table, keys, durable=False)
            again = writer.submit(table, keys, durable=False)
            assert not again.done() and not first.done()
        assert again.result(30) == 0 and first.result(0) == table.num_rows
        assert writer._journal is not None
        syncs: list[int] = []
        real = writer._journal.sync
        monkeypatch.setattr(writer._journal, "sync", lambda seq: (syncs.append(seq), real(seq)))
        table, keys = _batch(2)
        assert writer.submit(table, keys).result(30) == table.num_rows
        assert writer.submit(table, keys).result(30) == 0
        assert syncs == [2, 2]  # the retry waited for record 2, which holds its spans
        assert writer.await_moved(timeout=30) and _stored(database) == 2 * table.num_rows


def test_records_read_back_in_order_and_segments_roll_and_go_once_moved(tmp_path: Path) -> None:
    table, _ = _batch(1)
    journal = Journal(tmp_path / "j", segment_bytes=1)  # every record opens a segment
    for seq in (1, 2, 3):
        journal.append(seq, table)
        journal.sync(seq)
    assert len(journal.segments()) == 3
    assert [(r.seq, r.table.num_rows) for r in journal.records()] == [(s, 16) for s in (1, 2, 3)]
    assert next(journal.records()).table.equals(table)
    journal.moved(2)  # the open segment (record 3) stays, the two it rolled past go
    assert [p.name for p in journal.segments()] == ["00000000000000000003.seg"]
    assert journal._releaser.wait_idle(30)  # freed in steps, off this thread
    assert journal._releaser.stats.files == 2
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == [
        "00000000000000000003.seg",
        "lock",
    ]
    journal.close(all_moved=True)
    assert not (tmp_path / "j").exists()


def test_a_spent_segment_a_crash_left_is_not_replayed_and_goes_at_open(tmp_path: Path) -> None:
    table, _ = _batch(1)
    journal = Journal(tmp_path / "j", segment_bytes=1)
    for seq in (1, 2):
        journal.append(seq, table)
        journal.sync(seq)
    journal.close(all_moved=False)
    # As a crash leaves it: record 1 moved, its segment renamed, not yet freed.
    (tmp_path / "j" / "00000000000000000001.seg").rename(
        tmp_path / "j" / "00000000000000000001.spent"
    )
    journal = Journal(tmp_path / "j")
    assert [r.seq for r in journal.records()] == [2]
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == [
        "00000000000000000002.seg",
        "lock",
    ]
    journal.close(all_moved=True)


def test_a_second_writer_cannot_take_a_journal_in_use(tmp_path: Path) -> None:
    first = Journal(tmp_path / "j")
    with pytest.raises(JournalBusy, match=r"in use by another flowscope writer \(this process\)"):
        Journal(tmp_path / "j", wait_s=0)
    started = time.monotonic()
    with pytest.raises(JournalBusy):
        Journal(tmp_path / "j", wait_s=0.2)
    assert time.monotonic() - started >= 0.2
    first.close(all_moved=True)
    Journal(tmp_path / "j", wait_s=0).close(all_moved=True)


def test_a_refused_writer_is_told_which_process_holds_the_journal(tmp_path: Path) -> None:
    (tmp_path / "j").mkdir()
    holding = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holding, str(tmp_path / "j" / "lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(
            JournalBusy, match=rf"another flowscope writer \(process {holder.pid}\)"
        ):
            Journal(tmp_path / "j", wait_s=0)
    finally:
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()
    Journal(tmp_path / "j", wait_s=0).close(all_moved=True)


def test_opening_waits_for_a_dying_holder_to_let_go(tmp_path: Path) -> None:
    # As after a SIGKILLed server, whose ingest process dies a moment after it.
    holder = Journal(tmp_path / "j")
    letting_go = threading.Timer(0.3, holder.close, kwargs={"all_moved": False})
    letting_go.start()
    try:
        Journal(tmp_path / "j", wait_s=30).close(all_moved=True)
    finally:
        letting_go.join()


def test_a_torn_or_damaged_tail_ends_the_segment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table, _ = _batch(2)
    journal = Journal(tmp_path / "j")
    journal.append(1, table)
    journal.append(2, table)
    journal.close(all_moved=False)
    (segment,) = journal.segments()
    whole = segment.read_bytes()
    segment.write_bytes(whole[:-10])  # a crash in the middle of the second append
    with caplog.at_level(logging.WARNING):
        assert [r.seq for r in read_segment(segment)] == [1]
    assert "never acknowledged" in caplog.text
    damaged = bytearray(whole)
    damaged[-5] ^= 0xFF  # a flipped byte fails the record's CRC
    segment.write_bytes(bytes(damaged))
    assert [r.seq for r in read_segment(segment)] == [1]


def test_a_damaged_record_before_whole_ones_loses_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One flipped byte dropped every acknowledged record after it, logged as "never
    acknowledged" (ops review)."""
    table, _ = _batch(2)
    journal = Journal(tmp_path / "j")
    for seq in (1, 2, 3, 4):
        journal.append(seq, table)
    journal.close(all_moved=False)
    (segment,) = journal.segments()
    whole = segment.read_bytes()
    size = len(whole) // 4  # the records are alike
    for where in (size + 100, size):  # in record 2's payload, then in its header's magic
        damaged = bytearray(whole)
        damaged[where] ^= 0xFF
        segment.write_bytes(bytes(damaged))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert [r.seq for r in read_segment(segment)] == [1, 3, 4]
        assert [r.levelname for r in caplog.records] == ["ERROR"]
        assert f"skipped {size} damaged bytes after record 1" in caplog.text
        assert "never acknowledged" not in caplog.text
    damaged = bytearray(whole)
    damaged[0] ^= 0xFF
    segment.write_bytes(bytes(damaged))
    caplog.clear()
    assert [r.seq for r in read_segment(segment)] == [2, 3, 4]
    assert f"skipped {size} damaged bytes at the segment's start" in caplog.text
    # A damaged number is no check's to catch (the CRC covers the payload): that record
    # reads with it, and the others as they are. A check of the numbers' order lost
    # every record after one (diff review).
    damaged = bytearray(whole)
    damaged[size + 4 + 7] ^= 0x01  # the top byte of record 2's number
    segment.write_bytes(bytes(damaged))
    assert [r.seq for r in read_segment(segment)] == [1, 2 + (1 << 56), 3, 4]


def test_acknowledged_spans_are_queryable_before_the_writer_moves_them_no_sooner(
    tmp_path: Path,
) -> None:
    database = Database(tmp_path / "j.duckdb")
    writer = SpanWriter(database, derive_interval_s=None)
    writer.start()
    try:
        with _held(writer):
            table, keys = _batch(3)
            assert writer.submit(table, keys).result(5) == 16  # acknowledged while held
            assert writer.submit(table, keys).result(5) == 0  # a retry: deduplicated
            assert _stored(database) == 0
            assert not writer.await_moved(timeout=0.05)
        assert writer.await_moved(timeout=30)
        database.await_writes()
        assert _stored(database) == 16
        assert database.span_count() == 16
    finally:
        writer.shutdown()
    # A clean shutdown moved everything: nothing of the journal is left.
    directory = journal_path(database.path)
    assert directory is not None and not directory.exists()
    database.close()


CRASHING_WRITER = textwrap.dedent(
    """
    import sys, threading
    from flowscope.collector.flatten import flatten_request
    from flowscope.store.database import Database
    from flowscope.store.writer import SpanWriter
    from flowscope.testing.otlp import realistic_request

    database = Database(sys.argv[1])
    writer = SpanWriter(database, derive_interval_s=None)
    writer.start()
    writer.run_task(lambda cursor: threading.Event().wait())  # the writer never moves
    acked = 0
    for seed in range(int(sys.argv[2])):
        batch = flatten_request(realistic_request(3, seed=seed)).batch
        acked += writer.submit(batch.table, batch.keys).result(30)
    print(acked, flush=True)
    threading.Event().wait()
    """
)


def _crashed_writer(db: Path, requests: int) -> int:
    """Spans a process acknowledged and never moved before it was SIGKILLed."""
    with subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(db), str(requests)],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            acked = int(process.stdout.readline())
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)
    return acked


@pytest.mark.parametrize("read_only", [False, True], ids=["read-write", "read-only"])
def test_spans_acknowledged_but_not_moved_survive_sigkill(
    tmp_path: Path, read_only: bool, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "crash.duckdb"
    acked = _crashed_writer(db, 20)
    assert acked == 20 * 3 * 8
    directory = journal_path(str(db))
    assert directory is not None and list(directory.glob("*.seg"))
    with caplog.at_level(logging.WARNING, logger="flowscope"):
        reopened = Database(db, read_only=read_only)
    # Seen at the default level: a restart after a crash said nothing (lifecycle review).
    assert f"replayed {acked} acknowledged spans from the journal" in caplog.text
    try:
        assert reopened.span_count() == acked
        row = (
            reopened.reader()
            .execute("SELECT count(DISTINCT (TraceId, SpanId)) FROM otel_traces")
            .fetchone()
        )
        assert row == (acked,)
    finally:
        reopened.close()
    assert not directory.exists(), "a replayed journal is removed"
    again = Database(db)  # replayed once: a second open adds nothing
    try:
        assert again.span_count() == acked
    finally:
        again.close()


def test_a_read_only_open_that_cannot_replay_still_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "stuck.duckdb"
    acked = _crashed_writer(db, 2)
    directory = journal_path(str(db))
    assert directory is not None
    (directory / "lock").unlink()
    (directory / "lock").mkdir()  # the journal cannot be taken, as on a read-only copy
    with caplog.at_level(logging.WARNING):
        reader = Database(db, read_only=True)
    try:
        assert reader.span_count() == 0
    finally:
        reader.close()
    assert "leaves out the acknowledged spans" in caplog.text
    with pytest.raises(StoreError, match="cannot open the span journal"):
        Database(db)  # read-write it is refused, and closed again
    (directory / "lock").rmdir()
    fixed = Database(db)
    try:
        assert fixed.span_count() == acked
    finally:
        fixed.close()


def test_a_refused_commit_is_retried_for_acknowledged_spans_and_fails_a_bulk_write(
    tmp_path: Path,
) -> None:
    with _writer(tmp_path / "retry.duckdb") as (database, writer):
        working = writer._insert_sql
        # The database refuses every insert, as a full disk would.
        writer._insert_sql = working.replace("INSERT INTO otel_traces", "INSERT INTO no_such_table")
        table, keys = _batch(5)
        assert writer.submit(table, keys).result(5) == 16  # acknowledged: must not be lost
        with pytest.raises(Exception, match="no_such_table"):
            writer.write(*_batch(4), timeout=30)  # nobody was told these are stored
        assert not writer.await_moved(timeout=0.5)
        assert writer.stats.failed_commits >= 2
        # While commits fail, more spans are refused: journalled, they took the room
        # a commit needs once the disk had some again.
        with pytest.raises(QueueFull, match="span commits are failing"):
            writer.submit(*_batch(6))
        writer._insert_sql = working  # the disk has room again
        assert writer.await_moved(timeout=30)
        assert _stored(database) == 16
        assert writer.submit(*_batch(6)).result(30) == 16


@pytest.mark.parametrize("durable", [True, False])
def test_a_commit_that_errs_after_its_spans_are_stored_is_not_stored_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    """Out of memory in the clean-up after the insert (its unregister) was taken for a
    failed commit: acknowledged spans were inserted again, and stored twice."""
    real = writer_module.insert_spans
    calls: list[int] = []

    def errs_after(cursor: Any, table: pa.Table, seq: int, sql: str) -> None:
        calls.append(seq)
        real(cursor, table, seq, sql)
        if len(calls) == 1:
            raise duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate 4.0 KiB")

    monkeypatch.setattr(writer_module, "insert_spans", errs_after)
    with _writer(tmp_path / "landed.duckdb") as (database, writer):
        table, keys = _batch(6)
        stored = writer.submit(table, keys, durable=durable).result(30)
        assert stored == 16
        assert writer.await_moved(timeout=30)
        assert len(calls) == 1 and writer.stats.failed_commits == 0
        assert _stored(database) == 16


def test_acknowledged_spans_linger_for_company_until_a_reader_needs_them(tmp_path: Path) -> None:
    with _writer(tmp_path / "linger.duckdb", linger_s=60) as (database, writer):
        table, keys = _batch(6)
        assert writer.submit(table, keys).result(5) == 16
        assert _stored(database) == 0  # a small batch waits (up to 60 s here) for more
        started = time.monotonic()
        assert database.span_count() == 16  # an exact read asks the writer to commit now
        assert time.monotonic() - started < 30
        assert writer.stats.commits == 1


def test_one_commit_takes_at_most_max_batch_bytes_of_queued_spans(tmp_path: Path) -> None:
    """Before, a commit took every queued request up to 32,768 spans, whatever they
    weighed: spans of 8 MB attributes made one 2.9 GB insert, the server's memory went
    to 17.8 GB and the commit outlasted the stop."""
    batches = [_batch(seed) for seed in range(6)]
    weight = min(table_bytes(table) for table, _ in batches)  # each under twice this
    with _writer(tmp_path / "budget.duckdb", max_batch_bytes=2 * weight) as (database, writer):
        with _held(writer):  # all six wait in the queue together
            for table, keys in batches:
                assert writer.submit(table, keys).result(5) == 16
            assert writer.queued_bytes == sum(table_bytes(t) for t, _ in batches)
        assert database.span_count() == 96
        assert writer.stats.commits == 3  # two requests a commit
        assert (writer.queued_spans, writer.queued_bytes) == (0, 0)


def test_a_trace_lookup_waits_only_for_requests_that_hold_its_spans(tmp_path: Path) -> None:
    with _writer(tmp_path / "lookup.duckdb", linger_s=60) as (database, writer):
        table, keys = _batch(7, traces=1)
        (trace_id,) = set(table.column("TraceId").to_pylist())
        assert writer.submit(table, keys).result(5) == 8
        database.await_writes("0" * 32)  # a trace not waiting: no commit is asked for
        assert writer.stats.commits == 0 and _stored(database) == 0
        database.await_writes(trace_id)
        assert writer.stats.commits == 1 and _stored(database) == 8


def test_records_after_a_failed_append_are_not_lost_behind_its_torn_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table, _ = _batch(8)
    journal = Journal(tmp_path / "j")
    journal.append(1, table)
    real_writev = os.writev

    def disk_full(fd: int, buffers: list[bytes]) -> int:
        data = b"".join(buffers)
        return os.write(fd, data[: len(data) // 2])  # half written, then no space

    monkeypatch.setattr(os, "writev", disk_full)
    with pytest.raises(JournalError, match="short write"):
        journal.append(2, table)  # never acknowledged
    monkeypatch.setattr(os, "writev", real_writev)
    journal.append(3, table)
    journal.sync(3)
    assert [r.seq for r in journal.records()] == [1, 3]
    journal.close(all_moved=False)


def test_a_segment_reopened_after_failed_appends_is_not_taken_for_a_closed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table, _ = _batch(8)
    journal = Journal(tmp_path / "j", segment_bytes=1)  # every record opens a segment
    journal.append(1, table)
    real_writev = os.writev

    def no_space(fd: int, buffers: list[bytes]) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "writev", no_space)
    for _ in range(2):  # the same record, twice: its segment is opened again
        with pytest.raises(OSError):
            journal.append(2, table)
    monkeypatch.setattr(os, "writev", real_writev)
    journal.append(2, table)
    journal.sync(2)
    journal.moved(1)  # record 1's segment goes; the one record 2 is in must stay
    assert [r.seq for r in journal.records()] == [2]
    journal.close(all_moved=False)


def test_a_journal_that_cannot_be_opened_stops_the_writer_with_a_message(tmp_path: Path) -> None:
    database = Database(tmp_path / "blocked.duckdb")
    Path(f"{database.path}.journal").write_text("not a folder")
    writer = SpanWriter(database, derive_interval_s=None)
    try:
        with pytest.raises(StoreError, match=r"blocked\.duckdb\.journal: cannot open the span"):
            writer.start()
        assert not writer.running
    finally:
        writer.shutdown()
        database.close()


def test_a_read_of_an_older_schema_with_a_journal_does_not_upgrade_it(tmp_path: Path) -> None:
    """Replaying the journal for a read opened the file read-write, which upgraded its
    schema for good: the release that wrote it could not read it any more."""
    from tests.analyzer.old_schemas import make_schema_6

    db = tmp_path / "old.duckdb"
    acked = _crashed_writer(db, 2)
    make_schema_6(db)  # as the previous release left it
    with pytest.raises(StoreError, match="schema version 6; open it once read-write"):
        Database(db, read_only=True)
    check = duckdb.connect(str(db), read_only=True)
    try:
        assert check.execute("SELECT version FROM schema_meta").fetchall() == [(6,)]
    finally:
        check.close()
    directory = journal_path(str(db))
    assert directory is not None and list(directory.glob("*.seg"))  # still to replay
    upgraded = Database(db)  # read-write: upgraded, then replayed
    try:
        assert upgraded.span_count() == acked
    finally:
        upgraded.close()


def test_readers_started_together_after_a_crash_all_read(tmp_path: Path) -> None:
    """One replayed the journal; the others found the file "in use" by it and failed."""
    db = tmp_path / "crash.duckdb"
    acked = _crashed_writer(db, 20)
    command = [sys.executable, "-m", "flowscope.cli", "sql", "--db", str(db), "--format", "csv"]
    readers = [
        subprocess.Popen(
            [*command, "SELECT count(*) AS n FROM otel_traces"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    answers = [reader.communicate(timeout=120) for reader in readers]
    for reader, (out, err) in zip(readers, answers, strict=True):
        assert reader.returncode == 0, err
        assert out.splitlines() == ["n", str(acked)]


def test_a_read_of_a_running_servers_file_does_not_wait_for_a_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running server's journal always has a segment: the read took it for a reader
    replaying and waited 30 s before it went to the server."""
    from flowscope.store import database as database_module
    from flowscope.store.database import DatabaseLocked
    from flowscope.testing.posting import post_realistic
    from flowscope.testing.server import start_server_process

    def no_waiting(seconds: float) -> None:
        raise AssertionError(f"waited {seconds} s for a replay")

    db = tmp_path / "served.duckdb"
    server = start_server_process(db, "--no-ingest-process")
    try:
        post_realistic(server.endpoints.http, 1, traces=3)
        assert has_segments(journal_path(str(db)))
        monkeypatch.setattr(database_module.time, "sleep", no_waiting)
        with pytest.raises(DatabaseLocked):  # the caller then asks the server
            Database(db, read_only=True)
    finally:
        monkeypatch.undo()
        assert server.stop() == 0
    assert not Path(f"{db}.replaying").exists()


def test_a_read_behind_a_busy_writer_says_how_far_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a flood, reads waited 10 s and were refused with no reason given: it read
    as a stuck store (ops review). A writer committing but behind says so."""
    from flowscope.store.database import WritesBehind

    monkeypatch.setattr(writer_module, "AWAIT_MOVED_S", 0.3)
    with _writer(tmp_path / "busy.duckdb") as (_database, writer):
        release = threading.Event()
        blocked = writer.run_task(lambda _cursor: release.wait(30))  # a long commit
        table, keys = _batch(seed=21)
        writer.submit(table, keys).result(30)  # in the journal: acknowledged
        try:
            with pytest.raises(WritesBehind) as behind:
                writer._await_acknowledged()
        finally:
            release.set()
            blocked.result(30)
        assert f"the writer is behind, {table.num_rows:,} spans wait for it" in str(behind.value)
        assert "the last commit failed" not in str(behind.value)


def test_spans_whose_commit_failed_at_the_stop_stay_in_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A later, smaller batch committed after the failing one was given up at the stop:
    the journal's mark moved past the failed spans, their records were dropped, and
    196,608 acknowledged spans were lost with exit 0 (failure review)."""
    from flowscope.testing.waiting import wait_until

    path = tmp_path / "stop.duckdb"
    database = Database(path)
    writer = SpanWriter(database, derive_interval_s=None)
    writer.max_batch = writer_module.Load(16, writer.max_batch.bytes)  # a commit a request
    failing_batch = flatten_request(realistic_request(2, seed=1)).batch
    later_batch = flatten_request(realistic_request(2, seed=2)).batch
    failing, later = failing_batch.table, later_batch.table
    doomed = set(failing.column("TraceId").to_pylist())
    real_insert = writer_module.insert_spans

    def insert(cursor: Any, table: pa.Table, seq: int, sql: str) -> None:
        if doomed & set(table.column("TraceId").to_pylist()):
            raise duckdb.OutOfMemoryException("Out of Memory Error: for the test")
        real_insert(cursor, table, seq, sql)

    monkeypatch.setattr(writer_module, "insert_spans", insert)
    writer.start()
    hold = threading.Event()
    writer.run_task(lambda cursor: hold.wait(30))
    writer.submit(failing, failing_batch.keys).result(30)
    writer.submit(later, later_batch.keys).result(30)
    hold.set()
    wait_until(lambda: writer.stats.failed_commits >= 1, "the first commit to fail")
    writer.shutdown()
    database.close()
    monkeypatch.setattr(writer_module, "insert_spans", real_insert)
    reopened = Database(path)  # replays the journal
    try:
        assert reopened.span_count() == 32
    finally:
        reopened.close()
