-- Derivation: the rows analyzer/derived_rows.py computed (registered as dv_*_in Arrow
-- tables) as this cursor's temp tables, shaped like the stored ones.
-- A trace derived before keeps its number; the others are numbered after the last one
-- handed out, by first span start (a reader's overlay numbers them for its own snapshot
-- only: it never stores them).
CREATE OR REPLACE TEMP TABLE dv_trace_index AS
WITH known AS (
    SELECT t.*, k.TraceNo AS KnownNo,
           row_number() OVER (PARTITION BY k.TraceNo IS NULL ORDER BY t.FirstStart, t.TraceId) AS Nth
    FROM dv_traces_in t LEFT JOIN dv_scope_nos k USING (TraceKey, TraceId)
)
SELECT
    t.TraceId,
    make_timestamp_ns(t.FirstStart) AS FirstTs,
    make_timestamp_ns(t.LastStart) AS LastTs,
    make_timestamp_ns(t.EndNs) AS EndTs,
    t.Spans, t.ErrorSpans, t.Services, t.RootSpanId,
    make_timestamp_ns(t.RootStart) AS RootTs,
    t.RootService, t.RootOperation, t.RootKind, t.RootDuration, t.RootStatus, t.RootRoute,
    t.RootAttributes, t.RootResource,
    t.TraceKey,
    CAST(coalesce(
        t.KnownNo, coalesce((SELECT max(HandedOut) FROM trace_numbers), 0) + t.Nth
    ) AS UBIGINT) AS TraceNo
FROM known t;
CREATE OR REPLACE TEMP TABLE dv_edge_calls AS
SELECT make_timestamp_ns(c.Ts) AS Ts, c.EdgeKey, c.LatencyNs, c.LagNs, c.IsError, c.Bucket,
       c.LagBucket, c.SourceTraceKey, t.TraceNo
FROM dv_edge_calls_in c
JOIN dv_trace_index t USING (TraceKey);  -- a call's trace has a span in scope: it is there
CREATE OR REPLACE TEMP TABLE dv_edge_keys AS SELECT * FROM dv_edge_keys_in;
CREATE OR REPLACE TEMP TABLE dv_trace_links AS SELECT * FROM dv_links_in;
CREATE OR REPLACE TEMP TABLE dv_span_steps AS
SELECT
    make_timestamp_ns(s.RootStart) AS RootTs, s.StepKey, s.Duration, s.SelfNs,
    s.OffsetNs, CAST(round(s.CpFraction * 1e9) AS UINTEGER) AS CpNano,
    s.IsError, s.IsOrigin, s.FirstInTrace,
    t.RootKey,
    t.TraceNo
FROM dv_span_steps_in s
JOIN (  -- steps are those of traces with a root
    SELECT TraceKey, TraceNo, coalesce(fs_root_key(RootService, RootOperation), 0) AS RootKey
    FROM dv_trace_index
) t USING (TraceKey);
CREATE OR REPLACE TEMP TABLE dv_step_keys AS SELECT * FROM dv_step_keys_in;
