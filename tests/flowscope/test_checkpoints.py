"""Row-group merges only while they are cheap.

DuckDB's full checkpoints (no other transaction open: at a server's open after a
crash, at its stop, when quiet) merge small row groups into full ones, rewriting every
row of them; over gigabytes of spans of large attributes one took 99 s, which a restart
waited for while listening to nothing and which a stop outlasted. Without any merge,
though, each checkpoint left a block or more per table for good.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from flowscope.collector.decode import decode
from flowscope.store import database as database_module
from flowscope.store.database import Database, merges_within
from flowscope.store.writer import SpanWriter
from flowscope.testing.otlp import realistic_request


def row_group_blocks(connection: duckdb.DuckDBPyConnection) -> dict[int, set[int]]:
    """Each row group of otel_traces: the blocks its columns are stored in."""
    rows = connection.execute(
        "SELECT row_group_id, block_id FROM pragma_storage_info('otel_traces') "
        "WHERE persistent AND block_id >= 0"
    ).fetchall()
    groups: dict[int, set[int]] = {}
    for group, block in rows:
        groups.setdefault(group, set()).add(block)
    return groups


def store(writer: SpanWriter, traces: int, seed: int) -> None:
    request = realistic_request(traces, seed=seed, first_trace=seed * traces)
    result = decode(request.SerializeToString(), "application/x-protobuf")
    writer.submit(result.batch.table, result.batch.keys, durable=False).result()


def test_small_row_groups_of_big_spans_are_not_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the spans' small row groups held more than a merge may rewrite.
    monkeypatch.setattr(database_module, "MERGE_BYTES_MAX", 0)
    path = tmp_path / "spans.duckdb"
    database = Database(path)
    # No derive thread: a pass's open transaction made the CHECKPOINT fail, or made it
    # one that merges nothing whatever the setting.
    writer = SpanWriter(database, derive_interval_s=None)
    writer.start()
    seen: list[dict[int, set[int]]] = []
    try:
        for seed in range(3):
            store(writer, 250, seed)  # 2,000 spans: a row group of its own at each checkpoint
            # None stored yet before the first checkpoint: nothing a merge would rewrite.
            assert database.review_row_group_merges() is (seed == 0)
            cursor = database.writer_cursor()
            cursor.execute("CHECKPOINT")
            seen.append(row_group_blocks(cursor))
            cursor.close()
        store(writer, 250, 3)
    finally:
        writer.shutdown()
        database.close()  # its checkpoint stores the last 2,000 spans
    with duckdb.connect(str(path), read_only=True) as connection:
        final = row_group_blocks(connection)
        stored = connection.execute("SELECT count(*) FROM otel_traces").fetchone()
    assert stored == (8_000,)
    # Merged, the four groups of 2,000 rows became one of 8,000 in new blocks.
    assert len(final) == 4
    for earlier in seen:
        for group, blocks in earlier.items():
            assert final[group] == blocks


def test_small_row_groups_of_ordinary_spans_are_merged(tmp_path: Path) -> None:
    # Ten imports of 2,000 spans each, one open and close apiece: unmerged, each close
    # left its spans in a row group of their own, in blocks of their own.
    path = tmp_path / "spans.duckdb"
    for seed in range(10):
        database = Database(path)
        writer = SpanWriter(database)
        writer.start()
        try:
            store(writer, 250, seed)
        finally:
            writer.shutdown()
            database.close()
    with duckdb.connect(str(path), read_only=True) as connection:
        groups = row_group_blocks(connection)
        stored = connection.execute("SELECT count(*) FROM otel_traces").fetchone()
    assert stored == (20_000,)
    assert len(groups) <= 2


def test_merges_are_looked_at_again_as_spans_are_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spans of large attributes grow the small row groups fast: a look only every
    # 60 s, between derive passes, let merges of them stall commits for up to 17 s.
    monkeypatch.setattr(database_module, "MERGE_BYTES_MAX", 0)
    monkeypatch.setattr(database_module, "MERGE_REVIEW_BYTES", 1)  # at every commit
    database = Database(tmp_path / "spans.duckdb")  # empty at its open: merges allowed
    writer = SpanWriter(database, derive_interval_s=None)  # no derive thread
    writer.start()
    try:
        store(writer, 250, 0)
        with database._merge_review:  # the look that commit started is over
            pass
        cursor = database.writer_cursor()
        cursor.execute("CHECKPOINT")  # a small row group now
        cursor.close()
        assert database.review_row_group_merges(every_s=3600) is True  # not looked since
        store(writer, 250, 1)
        with database._merge_review:
            pass
        assert database.review_row_group_merges(every_s=3600) is False
    finally:
        writer.shutdown()
        database.close()


def test_a_checkpoints_merges_rewrite_a_bounded_amount() -> None:
    limit = database_module.MERGE_BYTES_MAX
    all_of_them = database_module.ROW_GROUP_MERGES
    assert merges_within(0, 0) == all_of_them  # nothing small
    assert merges_within(limit, 2_000) == all_of_them  # small all together
    # Ordinary spans piled up in small groups (60 bytes a row): a few merges a time.
    assert 1 <= merges_within(2_000_000 * 60, 2_000_000) < all_of_them
    # Spans of 10 KB attributes (5 KB a row stored): a merge of three groups' rows is
    # gigabytes, so none.
    assert merges_within(60_000 * 5_000, 60_000) == 0
