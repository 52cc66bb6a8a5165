"""DuckDB's invalidation is off (a user's query that meets a DuckDB defect stopped the
server); flowscope keeps the restricted mode itself after its own statements fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from flowscope.collector.decode import decode
from flowscope.store.database import Database, DatabaseFailed
from flowscope.store.sandbox import run_sandboxed
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import realistic_request


def _fail_a_checkpoint(cursor: Any) -> None:
    """A checkpoint that stops half-way, as one that ran out of memory does."""
    cursor.execute("SET debug_checkpoint_abort = 'before_header'")
    cursor.execute("CHECKPOINT")


def _insert_a_row(cursor: Any) -> None:
    cursor.execute("CREATE TABLE after_the_failure AS SELECT 1 AS a")


def test_after_a_fatal_error_nothing_more_is_read_or_written(tmp_path: Path) -> None:
    path = tmp_path / "fatal.duckdb"
    database = Database(path)
    writer = SpanWriter(database, derive_interval_s=None)
    writer.start()
    try:
        batch = decode(realistic_request(2).SerializeToString()).batch
        assert writer.write(batch.table, batch.keys, timeout=30) == 16
        with pytest.raises(duckdb.FatalException):
            writer.run_task(_fail_a_checkpoint).result(30)
        assert database.failed is not None and "FATAL" in database.failed
        # DuckDB itself would run these now: its invalidation is off.
        with pytest.raises(DatabaseFailed) as refused:
            writer.run_task(_insert_a_row).result(30)
        assert str(refused.value) == database.failed
        with pytest.raises(DatabaseFailed):
            database.reader()
        with pytest.raises(DatabaseFailed):
            run_sandboxed(database, "SELECT 1")
    finally:
        writer.shutdown()
        database.close()
    reopened = Database(path)
    try:
        assert reopened.span_count() == 16
        rows = reopened.reader().execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'after_the_failure'"
        )
        assert rows.fetchall() == [(0,)]
    finally:
        reopened.close()
