"""What a compact span store would save on disk, and what it would cost raw-span SQL.

    python bench/compact_layout.py --db FILE     # a file bench/analyzer.py --keep left
    python bench/compact_layout.py --spans N     # fills N web-shop spans as bench/disk.py

The ≤ 40 bytes/span target of the collector is missed (docs/benchmarks.md, "Bytes
on disk"): the span table and the analyzer's per-span rows each hold the ids and
times of every span. This builds, from a flowscope file, the layout that would hold
them once: one compact row per span (the span id as an integer, the parent as its
position in the trace, times from the root's start, the step's derived columns
beside them), one row per trace (its hex id and root start), and the cross-service
calls by number. `otel_traces` would then be a view over those tables. It prints
the bytes/span of each table copied alone into a file of its own, against the
file's own tables copied so, and how long four raw-span queries take on the real
`otel_traces` and on such a view. The derived columns of a span are paired with its
row by the order of start offsets within the trace, which is exact but for spans
that start at the same nanosecond; that changes no size measurably.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from disk import _copied_bytes, fill, table_bytes

BUILD = [
    """CREATE TEMP TABLE spans_numbered AS
    SELECT o.*, ti.TraceNo, ti.RootTs AS TraceRootTs,
           row_number() OVER (PARTITION BY ti.TraceNo
                              ORDER BY o.Timestamp, o.Duration DESC, o.SpanId) AS Pos
    FROM src.otel_traces o JOIN src.trace_index ti USING (TraceId)""",
    """CREATE TEMP TABLE steps_numbered AS
    SELECT *, row_number() OVER (PARTITION BY TraceNo ORDER BY OffsetNs, Duration DESC) AS Pos
    FROM src.span_steps""",
    """CREATE TEMP TABLE parents AS
    SELECT c.TraceNo, c.Pos, min(p.Pos) AS ParentPos
    FROM spans_numbered c JOIN spans_numbered p
      ON p.TraceNo = c.TraceNo AND p.SpanId = c.ParentSpanId
    GROUP BY ALL""",
    """CREATE TABLE compact_spans AS
    SELECT t.TraceNo, ('0x' || t.SpanId)::UBIGINT AS SpanId, pa.ParentPos::USMALLINT AS ParentPos,
           epoch_ns(t.Timestamp) - epoch_ns(t.TraceRootTs) AS OffsetNs, t.Duration,
           st.SelfNs, st.CpNano,
           (dense_rank() OVER (ORDER BY st.StepKey))::UINTEGER AS StepNo,
           st.IsError, st.IsOrigin, t.TraceState, t.SpanName, t.SpanKind, t.ServiceName,
           t.ResourceAttributes, t.ScopeName, t.ScopeVersion, t.SpanAttributes, t.StatusCode,
           t.StatusMessage, t.Events, t.Links, t.Flags
    FROM spans_numbered t
    LEFT JOIN steps_numbered st ON st.TraceNo = t.TraceNo AND st.Pos = t.Pos
    LEFT JOIN parents pa ON pa.TraceNo = t.TraceNo AND pa.Pos = t.Pos
    ORDER BY t.TraceNo, t.Pos""",
    """CREATE TABLE compact_traces AS
    SELECT ti.TraceNo, ti.TraceId, ti.RootTs, epoch_ns(ti.EndTs) - epoch_ns(ti.RootTs) AS EndNs,
           ti.Spans, ti.ErrorSpans, ti.Services, r.RootKey
    FROM src.trace_index ti
    LEFT JOIN (SELECT DISTINCT TraceNo, RootKey FROM src.span_steps) r USING (TraceNo)
    ORDER BY ti.TraceNo""",
    """CREATE TABLE compact_calls AS
    SELECT e.EdgeKey, e.TraceNo, epoch_ns(e.Ts) - epoch_ns(ti.RootTs) AS OffsetNs,
           e.LatencyNs, e.LagNs, e.IsError, e.SourceTraceKey
    FROM src.edge_calls e JOIN src.trace_index ti USING (TraceNo)
    ORDER BY e.EdgeKey, e.TraceNo""",
    # The columns the queries below read, as an otel_traces view would give them.
    """CREATE VIEW spans_view AS
    SELECT make_timestamp_ns(epoch_ns(tr.RootTs) + s.OffsetNs) AS "Timestamp", tr.TraceId,
           printf('%016x', s.SpanId) AS SpanId,
           coalesce(printf('%016x', p.SpanId), '') AS ParentSpanId,
           s.SpanName, s.SpanKind, s.ServiceName, s.Duration, s.StatusCode, s.SpanAttributes
    FROM compact_spans s JOIN compact_traces tr USING (TraceNo)
    LEFT JOIN (SELECT TraceNo, SpanId,
                      row_number() OVER (PARTITION BY TraceNo ORDER BY rowid) AS Pos
               FROM compact_spans) p ON p.TraceNo = s.TraceNo AND p.Pos = s.ParentPos""",
]

# Kept from the file as they are: per-minute rollups and the map's node durations,
# which compact_spans would replace (a SERVER/CONSUMER step's rows hold them).
KEPT = ("edge_minutes", "service_minutes")

QUERIES = {
    "spans per service": "SELECT ServiceName, count(*) FROM {t} GROUP BY 1",
    "one trace by id": "SELECT * FROM {t} WHERE TraceId = '{trace}'",
    "P99 per span name": "SELECT SpanName, quantile_cont(Duration, 0.99) FROM {t} GROUP BY 1",
    "caller/callee self-join": (
        "SELECT p.ServiceName, c.ServiceName, count(*) FROM {t} c JOIN {t} p "
        "ON p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId "
        "WHERE p.ServiceName <> c.ServiceName GROUP BY ALL"
    ),
}


def build(source: Path, target: Path) -> None:
    with duckdb.connect(str(target)) as con:
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        for statement in BUILD:
            con.execute(statement)
        con.execute("CHECKPOINT")


def query_ms(source: Path, compact: Path) -> dict[str, dict[str, float]]:
    """Best of three, each query on the real table and on the view."""
    times: dict[str, dict[str, float]] = {}
    with duckdb.connect(str(compact), read_only=True) as con:
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        trace = con.execute(
            "SELECT TraceId FROM compact_traces ORDER BY TraceNo LIMIT 1 OFFSET 5000"
        ).fetchall()[0][0]
        for name, query in QUERIES.items():
            for label, table in (("otel_traces", "src.otel_traces"), ("view", "spans_view")):
                best = float("inf")
                for _ in range(3):
                    start = time.perf_counter()
                    con.execute(query.format(t=table, trace=trace)).fetchall()
                    best = min(best, time.perf_counter() - start)
                times.setdefault(name, {})[label] = round(best * 1000, 1)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="a flowscope file (bench/analyzer.py --keep)")
    parser.add_argument("--spans", type=int, default=1_000_000, help="without --db: fill so many")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        source = args.db
        if source is None:
            source = scratch / "webshop.duckdb"
            fill(source, args.spans, batch_traces=64)
        with duckdb.connect(str(source), read_only=True) as con:
            spans = con.execute("SELECT count(*) FROM otel_traces").fetchall()[0][0]
        compact = scratch / "compact.duckdb"
        build(source, compact)
        now = table_bytes(source, scratch)
        tables = ("compact_spans", "compact_traces", "compact_calls")
        selects = {name: f"SELECT * FROM src.{name}" for name in tables}
        laid_out = _copied_bytes(compact, scratch, selects)
        laid_out.update({name: now[name] for name in KEPT if name in now})
        result = {
            "spans": spans,
            "source": str(args.db) if args.db else f"bench/disk.py fill, {spans} spans",
            "now_bytes_per_span": {k: round(v / spans, 2) for k, v in now.items() if v > 0},
            "now_total": round(sum(now.values()) / spans, 1),
            "compact_bytes_per_span": {k: round(v / spans, 2) for k, v in laid_out.items()},
            "compact_total": round(sum(laid_out.values()) / spans, 1),
            "query_ms": query_ms(source, compact),
            "duckdb": duckdb.__version__,
            "machine": f"{platform.machine()}, {platform.python_version()}",
        }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
