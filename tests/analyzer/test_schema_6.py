"""Schema 5 -> 6 (smaller derived rows): an upgraded file gives the same answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from flowscope.analyzer.analysis import Analysis
from flowscope.store.database import SCHEMA_VERSION, Database
from flowscope.testing.traces import TraceKit

from .conftest import HOUR
from .test_derivation import answers, assert_edge_minutes_agree, mixed_kit
from .test_service_map import KAFKA


def everything(analysis: Analysis) -> dict[str, Any]:
    flows = [f.id for f in analysis.flows(HOUR)]
    return answers(analysis) | {
        "flow_maps": {f: analysis.service_map(HOUR, f).as_dict() for f in flows}
    }


def later_kit() -> TraceKit:
    """New traces for an upgraded file, with a call across traces (SourceTraceKey)."""
    kit = TraceKit()
    root = kit.trace(start_ms=200_000, trace_id="cd" * 16).span(
        "orders", "POST /fund", kind="Server", start_ms=0, duration_ms=40
    )
    producer = root.child(
        "orders", "publish", kind="Producer", start_ms=5, duration_ms=2, attributes=KAFKA
    )
    kit.trace(start_ms=200_010, trace_id="ce" * 16).span(
        "billing", "process", kind="Consumer", start_ms=0, duration_ms=9, links=[producer.link()]
    )
    return kit


def make_schema_5(path: Path) -> int:
    """Give a file the schema-5 tables: shares as DOUBLE fractions, and calls naming
    their traces by id in the columns (and places) schema 5 had them. Returns how
    many calls name another trace as their source."""
    con = duckdb.connect(str(path))
    try:
        con.execute("ALTER TABLE span_steps RENAME COLUMN CpNano TO CpFraction")
        con.execute("ALTER TABLE span_steps ALTER CpFraction TYPE DOUBLE USING CpFraction / 1e9")
        con.execute(
            """CREATE TABLE calls_5 AS
            SELECT c.Ts, t.TraceId, coalesce(s.TraceId, '') AS SourceTraceId, c.EdgeKey,
                   c.LatencyNs, c.LagNs, c.IsError, c.Bucket, c.LagBucket, c.TraceKey
            FROM edge_calls c
            JOIN trace_index t ON t.TraceKey = c.TraceKey
            LEFT JOIN trace_index s ON s.TraceKey = c.SourceTraceKey"""
        )
        counts = con.execute(
            "SELECT (SELECT count(*) FROM edge_calls), count(*),"
            " count(*) FILTER (WHERE SourceTraceId <> '') FROM calls_5"
        )
        before, after, linked = counts.fetchone() or (0, 0, 0)
        assert before == after  # every call kept
        con.execute("DROP TABLE edge_calls")
        con.execute("ALTER TABLE calls_5 RENAME TO edge_calls")
        con.execute("UPDATE schema_meta SET version = 5")
    finally:
        con.close()
    return int(linked)


def test_schema_5_files_are_upgraded_in_place_with_the_same_answers(tmp_path: Path) -> None:
    fresh = Database(tmp_path / "six.duckdb")
    mixed_kit().write(fresh)
    later_kit().write(fresh)
    expected_later = everything(Analysis(fresh))
    fresh.close()
    path = tmp_path / "five.duckdb"
    database = Database(path)
    mixed_kit().write(database)
    expected = everything(Analysis(database))
    database.close()
    assert make_schema_5(path) == 1  # the kit's call across traces
    upgraded = Database(path)
    assert upgraded.fetch("schema_version")[0][0] == SCHEMA_VERSION == 6
    assert everything(Analysis(upgraded)) == expected
    assert_edge_minutes_agree(upgraded)
    # New traces derive into the upgraded tables as into a file made as schema 6.
    later_kit().write(upgraded)
    assert everything(Analysis(upgraded)) == expected_later
    assert_edge_minutes_agree(upgraded)
    upgraded.close()
