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

# DuckDB 2.0.1 fails this cast with an internal error, a defect of its own.
DUCKDB_DEFECT = (
    "SELECT CAST(t AS TIMESTAMP_S) FROM (VALUES (TIMESTAMP_MS '294247-01-10 04:00:54.775')) v(t)"
)


def _meet_a_defect(cursor: Any) -> None:
    cursor.execute(DUCKDB_DEFECT).fetchall()


def _insert_a_row(cursor: Any) -> None:
    cursor.execute("CREATE TABLE after_the_failure AS SELECT 1 AS a")


def test_after_its_own_statement_fails_nothing_more_is_read_written_or_checkpointed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "failed.duckdb"
    database = Database(path)
    writer = SpanWriter(database, derive_interval_s=None)
    writer.start()
    try:
        batch = decode(realistic_request(2).SerializeToString()).batch
        assert writer.write(batch.table, batch.keys, timeout=30) == 16  # in the WAL
        with pytest.raises(duckdb.InternalException):
            writer.run_task(_meet_a_defect).result(30)
        assert database.failed is not None and "INTERNAL Error" in database.failed
        # DuckDB itself would run each of these now: its invalidation is off.
        with pytest.raises(DatabaseFailed) as refused:
            writer.run_task(_insert_a_row).result(30)
        assert str(refused.value) == database.failed
        with pytest.raises(DatabaseFailed):
            database.reader()
        with pytest.raises(DatabaseFailed):
            run_sandboxed(database, "SELECT 1")
        # Not journalled: a commit that landed would be the only copy of these.
        more = decode(realistic_request(2, seed=9).SerializeToString()).batch
        writer.submit(more.table, more.keys, durable=False)
    finally:
        writer.shutdown(timeout=5)
        database.close()
    # DuckDB's own checkpoint as the connection closed would have written whatever the
    # failure left in memory into the file (and dropped the WAL).
    assert [p.name for p in tmp_path.glob("failed.duckdb.wal*")]
    reopened = Database(path)
    try:
        assert reopened.span_count() == 16
        rows = reopened.reader().execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'after_the_failure'"
        )
        assert rows.fetchall() == [(0,)]
    finally:
        reopened.close()


def test_a_merge_look_that_fails_so_is_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It only logged: with DuckDB's invalidation off, nothing else would have known."""
    from flowscope.store import sql_files

    database = Database(tmp_path / "merges.duckdb")
    real_query = sql_files.query

    def query(name: str) -> str:
        if name == "small_row_groups":
            return DUCKDB_DEFECT.replace(") v(t)", ") v(t) WHERE $full_rows > 0")
        return real_query(name)

    monkeypatch.setattr(sql_files, "query", query)
    try:
        database.review_row_group_merges()
        assert database.failed is not None and "INTERNAL Error" in database.failed
    finally:
        database.close()
