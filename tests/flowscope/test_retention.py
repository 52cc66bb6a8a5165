"""Retention (flowscope/store/retention.py): what a sweep deletes, what it says, and
that no read keeps what it deleted from being reclaimed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pyarrow as pa
import pytest

from flowscope.store import sql_files
from flowscope.store.database import Database
from flowscope.store.retention import RetentionSweeper
from flowscope.store.sandbox import SqlRefused, run_sandboxed
from flowscope.store.writer import SpanWriter
from flowscope.testing.traces import TraceKit
from flowscope.testing.waiting import wait_until


def _old_trace(kit: TraceKit, start_ms: float) -> None:
    # The kit's times are 2026-01-01 onwards: older than any retention of days.
    root = kit.trace(start_ms=start_ms).span(
        "gateway", "GET /", kind="Server", start_ms=0, duration_ms=5
    )
    root.child("gateway", "SELECT", kind="Client", start_ms=1, duration_ms=2)


def test_the_first_sweep_warns_with_the_way_to_keep_spans(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    kit = TraceKit()
    _old_trace(kit, 0)
    writer = SpanWriter(database, journal=False)
    writer.start()
    try:
        kit.write(database, writer=writer)
        sweeper = RetentionSweeper(writer, timedelta(days=7))
        with caplog.at_level(logging.INFO, logger="flowscope.store.retention"):
            sweeper.start()
            wait_until(lambda: sweeper.deleted == 2, "the first sweep")
            sweeper.shutdown()
            first = [r for r in caplog.records if r.name == "flowscope.store.retention"]
            assert [r.levelno for r in first] == [logging.WARNING]
            message = first[0].getMessage()
            assert "retention 7d: deleted 2 spans" in message
            assert "--retention off" in message
            caplog.clear()
            # Spans that age past the retention after they arrived are deleted quietly.
            # (A sweep with a long retention sees them young; the shorter one of the
            # next sweep stands in for the days passing.)
            written = len(kit.spans)
            _old_trace(kit, 10)
            kit.write(database, kit.spans[written:], writer=writer)
            sweeper.keep = timedelta(days=3650)
            assert sweeper.sweep() == 0
            sweeper.keep = timedelta(days=7)
            assert sweeper.sweep() == 2
            assert [r.levelno for r in caplog.records] == [logging.INFO]
    finally:
        writer.shutdown()
    assert database.span_count() == 0


def test_spans_older_than_the_retention_on_arrival_are_deleted_with_a_warning(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Old files imported into a running server went at the next sweep, logged at INFO
    only: the import said 286 spans accepted, and ten minutes later they were gone."""
    kit = TraceKit()
    writer = SpanWriter(database, journal=False)
    writer.start()
    try:
        sweeper = RetentionSweeper(writer, timedelta(days=7))
        assert sweeper.sweep(at_start=True) == 0
        _old_trace(kit, 0)
        _old_trace(kit, 10)
        kit.write(database, writer=writer)
        with caplog.at_level(logging.INFO, logger="flowscope.store.retention"):
            assert sweeper.sweep() == 4
        (record,) = caplog.records
        assert record.levelno == logging.WARNING
        assert record.getMessage().startswith(
            "retention 7d: deleted 4 spans, 4 of them already older than that when they arrived"
        )
        assert "--retention off" in record.getMessage()
    finally:
        writer.shutdown()


def test_a_sweep_with_nothing_old_says_nothing(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    writer = SpanWriter(database, journal=False)
    writer.start()
    try:
        with caplog.at_level(logging.INFO, logger="flowscope.store.retention"):
            assert RetentionSweeper(writer, timedelta(days=7)).sweep(at_start=True) == 0
    finally:
        writer.shutdown()
    assert not caplog.records


def _refused(database: Database) -> None:
    with pytest.raises(SqlRefused, match="no-file"):  # refused on DuckDB's parse tree
        run_sandboxed(database, "SELECT * FROM read_csv('/etc/passwd')")


def _imported(database: Database) -> None:
    cursor = database.writer_cursor()
    params = {"sha256": "0" * 64, "path": "spans.json", "spans": 2}
    cursor.execute(sql_files.query("record_imported_file"), params)
    assert database.imported_file("0" * 64) is not None


# Every read a server makes outside an analyzer snapshot (which ends its transaction):
# /healthz, import's already-imported check, the SQL endpoint, allowed and refused.
STORE_READS: dict[str, Callable[[Database], object]] = {
    "span_count": Database.span_count,
    "disk_usage": Database.disk_usage,
    "imported_file": _imported,
    # (Its rollback ends the result: a guard for the day it stops rolling back.)
    "sql": lambda database: run_sandboxed(database, "SELECT count(*) FROM otel_traces"),
    "sql refused": _refused,
}


@pytest.mark.parametrize("read", STORE_READS.values(), ids=STORE_READS.keys())
def test_reads_leave_no_result_open_to_hold_back_what_retention_frees(
    database: Database, read: Callable[[Database], object]
) -> None:
    # A result not read to its end keeps its snapshot: the rows retention deleted
    # could not be reclaimed while one stayed open on an idle thread's cursor, and the
    # file grew without bound (bench/retention.py: 53.7 to 248.6 bytes per kept span
    # over simulated days 4-10; docs/benchmarks.md, "Disk under retention").
    kit = TraceKit()
    _old_trace(kit, 0)
    kit.write(database)
    read(database)
    # DuckDB refuses to register a table beside an unfinished result: the probe.
    cursor = database.reader()
    cursor.register("probe", pa.table({"x": [1]}))
    cursor.unregister("probe")


def test_deleting_the_newest_commit_keeps_its_number_for_the_journal(
    database: Database,
) -> None:
    """A sweep that deleted every span of a commit no derivation pass had taken in left
    both marks below it; a crash then, and the journal stored those spans again."""
    from datetime import UTC, datetime

    from flowscope.store.retention import delete_older_than
    from flowscope.testing.traces import at_ms

    kit = TraceKit()
    _old_trace(kit, 3_600_000)  # kept
    _old_trace(kit, 0)  # deleted, and committed last
    writer = SpanWriter(database, journal=False, derive_interval_s=None)
    writer.start()
    try:
        kit.write(database, kit.spans[:2], writer=writer)
        kit.write(database, kit.spans[2:], writer=writer)
        newest = database.moved_seq()
        cutoff = datetime.fromtimestamp(at_ms(60_000) / 1e9, UTC)
        assert delete_older_than(writer, cutoff) == 2
        assert database.span_count() == 2
        # Journal records up to this mark count as stored (Database.replay_journal).
        assert database.moved_seq() == newest
    finally:
        writer.shutdown()
