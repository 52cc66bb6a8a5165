"""Files in older flowscope schemas, made from a current one, for the upgrade tests;
and the answers and later traces those tests compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from flowscope.analyzer.analysis import Analysis
from flowscope.testing.traces import TraceKit

from .conftest import HOUR
from .test_derivation import answers
from .test_service_map import KAFKA


def everything(analysis: Analysis) -> dict[str, Any]:
    flows = [f.id for f in analysis.flows(HOUR)]
    return answers(analysis) | {
        "flow_maps": {f: analysis.service_map(HOUR, f).as_dict() for f in flows},
        # Split by an attribute, steps join the flow's traces (sel_traces) instead of
        # finding an automatic flow's rows by its root key alone.
        "steps_by": {f: analysis.flow(f, HOUR, by="customer.tier").as_dict() for f in flows},
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
    make_schema_6(path)
    con = duckdb.connect(str(path))
    try:
        con.execute("ALTER TABLE span_steps RENAME COLUMN CpNano TO CpFraction")
        con.execute("ALTER TABLE span_steps ALTER CpFraction TYPE DOUBLE USING CpFraction / 1e9")
        con.execute(SCHEMA_5_CALLS)
        con.execute(
            """INSERT INTO calls_5
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


# Schema 5's per-call table as 003_analysis.sql created it.
SCHEMA_5_CALLS = """
CREATE TABLE calls_5 (
    Ts TIMESTAMP_NS NOT NULL, TraceId VARCHAR NOT NULL, SourceTraceId VARCHAR NOT NULL,
    EdgeKey UBIGINT NOT NULL, LatencyNs BIGINT NOT NULL, LagNs BIGINT, IsError BOOLEAN NOT NULL,
    Bucket SMALLINT NOT NULL, LagBucket SMALLINT, TraceKey UBIGINT NOT NULL
)
"""

# Schema 6's per-call and per-span tables as 003_analysis.sql created them.
SCHEMA_6_TABLES = """
CREATE TABLE calls_6 (
    Ts TIMESTAMP_NS NOT NULL, EdgeKey UBIGINT NOT NULL, LatencyNs BIGINT NOT NULL,
    LagNs BIGINT, IsError BOOLEAN NOT NULL, Bucket SMALLINT NOT NULL, LagBucket SMALLINT,
    TraceKey UBIGINT NOT NULL, SourceTraceKey UBIGINT NOT NULL DEFAULT 0
);
CREATE TABLE steps_6 (
    RootTs TIMESTAMP_NS NOT NULL, TraceKey UBIGINT NOT NULL, StepKey UBIGINT NOT NULL,
    Duration BIGINT NOT NULL, SelfNs BIGINT NOT NULL, OffsetNs BIGINT NOT NULL,
    CpNano UINTEGER NOT NULL, IsError BOOLEAN NOT NULL, IsOrigin BOOLEAN NOT NULL,
    FirstInTrace BOOLEAN NOT NULL, RootKey UBIGINT NOT NULL DEFAULT 0
);
"""


# Schema 7's keys as 004_keys.sql defines them now: DuckDB's hashes of the id strings.
SCHEMA_7_KEYS = """
CREATE OR REPLACE MACRO fs_trace_key(trace_id) AS hash(trace_id);
CREATE OR REPLACE MACRO fs_span_key(trace_key, span_id) AS hash(trace_key, span_id);
CREATE OR REPLACE MACRO fs_root_key(service, operation) AS hash(service, operation);
"""


def make_schema_7(path: Path) -> None:
    """Give a file schema 7's keys: DuckDB's hash(TraceId) in trace_index and for the
    linked producers in edge_calls, hash(service, operation) of the roots in
    span_steps, and no key macros."""
    con = duckdb.connect(str(path))
    try:
        con.execute(
            """UPDATE edge_calls SET SourceTraceKey = hash(i.TraceId)
            FROM (SELECT DISTINCT TraceId FROM otel_traces) i
            WHERE SourceTraceKey <> 0 AND SourceTraceKey = fs_trace_key(i.TraceId)"""
        )
        con.execute("UPDATE trace_index SET TraceKey = hash(TraceId)")
        con.execute(
            """UPDATE span_steps SET RootKey = hash(t.RootService, t.RootOperation)
            FROM trace_index t WHERE span_steps.TraceNo = t.TraceNo AND t.RootService IS NOT NULL"""
        )
        for macro in ("fs_root_key", "fs_span_key", "fs_trace_key", "fs_hex64"):
            con.execute(f"DROP MACRO IF EXISTS {macro}")
        con.execute("UPDATE schema_meta SET version = 7")
    finally:
        con.close()


def make_schema_6(path: Path) -> None:
    """Give a file the schema-6 tables: per-span and per-call rows naming their trace
    by TraceKey in the place schema 6 had it, and no trace numbers."""
    make_schema_7(path)
    con = duckdb.connect(str(path))
    try:
        con.execute(SCHEMA_6_TABLES)
        con.execute(
            """INSERT INTO steps_6
            SELECT s.RootTs, t.TraceKey, s.StepKey, s.Duration, s.SelfNs, s.OffsetNs, s.CpNano,
                   s.IsError, s.IsOrigin, s.FirstInTrace, s.RootKey
            FROM span_steps s JOIN trace_index t USING (TraceNo) ORDER BY s.rowid"""
        )
        con.execute(
            """INSERT INTO calls_6
            SELECT c.Ts, c.EdgeKey, c.LatencyNs, c.LagNs, c.IsError, c.Bucket, c.LagBucket,
                   t.TraceKey, c.SourceTraceKey
            FROM edge_calls c JOIN trace_index t USING (TraceNo) ORDER BY c.rowid"""
        )
        for old, new in (("span_steps", "steps_6"), ("edge_calls", "calls_6")):
            kept = con.execute(f"SELECT (SELECT count(*) FROM {old}) = count(*) FROM {new}")
            assert kept.fetchone() == (True,)  # every row kept
            con.execute(f"DROP TABLE {old}")
            con.execute(f"ALTER TABLE {new} RENAME TO {old}")
        con.execute("ALTER TABLE trace_index DROP COLUMN TraceNo")
        con.execute("DROP TABLE trace_numbers")
        con.execute("UPDATE schema_meta SET version = 6")
    finally:
        con.close()
