"""A commit of many small requests' tables is inserted as one piece."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from flowscope.collector import fast_flatten
from flowscope.collector.flatten import flatten_request
from flowscope.store import sql_files
from flowscope.store.database import Database, insert_spans
from flowscope.store.one_piece import MOST_PIECES, one_piece
from flowscope.testing.otlp import realistic_request


def _requests(count: int) -> pa.Table:
    """``count`` one-trace requests' tables, as the writer joins them: each of its own
    resources and dictionaries (the C flatten's and the Python one's)."""
    tables = []
    for n in range(count):
        request = realistic_request(1, seed=n, first_trace=n)
        fast = n % 2 == 0 and fast_flatten.flatten_body(request.SerializeToString())
        tables.append((fast or flatten_request(request)).batch.table)
    return pa.concat_tables(tables)


def test_many_pieces_become_one_with_the_same_values() -> None:
    table = _requests(MOST_PIECES + 36)
    assert table.column(0).num_chunks == MOST_PIECES + 36
    joined = one_piece(table)
    assert joined.schema.equals(table.schema)
    assert {column.num_chunks for column in joined.columns} == {1}
    assert joined.to_pylist() == table.to_pylist()


def test_few_pieces_are_left_as_they_are() -> None:
    table = _requests(MOST_PIECES)
    assert one_piece(table) is table


def test_duckdb_stores_the_joined_table_as_it_stores_the_pieces(tmp_path: Path) -> None:
    table = _requests(MOST_PIECES + 1)
    sql = sql_files.query("insert_spans")
    stored = []
    for name, version in (("pieces", table), ("joined", one_piece(table))):
        database = Database(tmp_path / f"{name}.duckdb")
        try:
            cursor = database.writer_cursor()
            insert_spans(cursor, version, 1, sql)
            stored.append(
                cursor.execute(
                    "SELECT * EXCLUDE (CommitSeq) FROM otel_traces ORDER BY TraceId, SpanId"
                ).fetchall()
            )
        finally:
            database.close()
    assert stored[0] == stored[1] and len(stored[0]) == table.num_rows
