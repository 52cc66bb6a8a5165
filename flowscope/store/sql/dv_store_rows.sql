-- Derivation: the rows analyzer/derived_rows.py computed (registered as dv_*_in Arrow
-- tables) as this cursor's temp tables, shaped like the stored ones.
CREATE OR REPLACE TEMP TABLE dv_trace_index AS
SELECT
    t.TraceId,
    make_timestamp_ns(t.FirstStart) AS FirstTs,
    make_timestamp_ns(t.LastStart) AS LastTs,
    make_timestamp_ns(t.EndNs) AS EndTs,
    t.Spans, t.ErrorSpans, t.Services, t.RootSpanId,
    make_timestamp_ns(t.RootStart) AS RootTs,
    t.RootService, t.RootOperation, t.RootKind, t.RootDuration, t.RootStatus, t.RootRoute,
    t.RootAttributes, t.RootResource,
    t.TraceKey
FROM dv_traces_in t;
CREATE OR REPLACE TEMP TABLE dv_edge_calls AS
SELECT make_timestamp_ns(Ts) AS Ts, EdgeKey, LatencyNs, LagNs, IsError, Bucket, LagBucket,
       TraceKey, SourceTraceKey
FROM dv_edge_calls_in;
CREATE OR REPLACE TEMP TABLE dv_edge_keys AS SELECT * FROM dv_edge_keys_in;
CREATE OR REPLACE TEMP TABLE dv_trace_links AS SELECT * FROM dv_links_in;
CREATE OR REPLACE TEMP TABLE dv_span_steps AS
SELECT
    make_timestamp_ns(s.RootStart) AS RootTs, s.TraceKey, s.StepKey, s.Duration, s.SelfNs,
    s.OffsetNs, CAST(round(s.CpFraction * 1e9) AS UINTEGER) AS CpNano,
    s.IsError, s.IsOrigin, s.FirstInTrace,
    coalesce(hash(t.RootService, t.RootOperation), 0) AS RootKey
FROM dv_span_steps_in s
LEFT JOIN dv_trace_index t USING (TraceKey);
CREATE OR REPLACE TEMP TABLE dv_step_keys AS SELECT * FROM dv_step_keys_in;
