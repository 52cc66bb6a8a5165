-- Every span of the selected traces (sel_traces), as input for the step tree.
CREATE OR REPLACE TEMP TABLE tree_spans AS
SELECT
    hash(s.TraceId) AS TraceKey,
    hash(s.TraceId, s.SpanId) AS SpanKey,
    CASE WHEN s.ParentSpanId = '' THEN CAST(0 AS UBIGINT) ELSE hash(s.TraceId, s.ParentSpanId) END AS ParentKey,
    hash(s.ServiceName, s.SpanName, s.SpanKind) AS OpKey,
    s.TraceId, s.SpanId, s.ParentSpanId, s.ServiceName, s.SpanName, s.SpanKind,
    epoch_ns(s.Timestamp) AS Start,
    s.Duration,
    s.StatusCode = 'Error' AS IsError,
    len(s.Links) > 0 AND len([l for l in s.Links
        if l.SpanId = s.ParentSpanId
        AND coalesce(l.Attributes['opentracing.ref_type'], '') = 'follows_from']) > 0 AS FollowsFrom,
    s.SpanId = t.RootSpanId AS IsTraceRoot
FROM otel_traces s
JOIN sel_traces t ON s.TraceId = t.TraceId
WHERE s.Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
