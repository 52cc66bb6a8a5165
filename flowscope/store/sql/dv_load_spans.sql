-- Derivation, step 3: the spans of one cluster of traces with what the derivation
-- reads (analyzer/derived_rows.py). 64-bit hashes stand in for the ids. The rules that
-- read attributes (peer names, messaging, routes) run on the returned maps in
-- analyzer/span_attributes.py: as SQL expressions here, DuckDB took ~8 ms to plan them
-- on every load.
SELECT
    fs_trace_key(TraceId) AS TraceKey,
    fs_span_key(TraceKey, SpanId) AS SpanKey,
    CASE WHEN ParentSpanId = '' THEN CAST(0 AS UBIGINT) ELSE fs_span_key(TraceKey, ParentSpanId) END AS ParentKey,
    epoch_ns(Timestamp) AS Start,
    greatest(Duration, 0) AS Duration,  -- a sender's end before its start: 0
    ServiceName,
    SpanName,
    SpanKind,
    StatusCode = 'Error' AS IsError,
    CASE WHEN SpanKind = 'Consumer' AND len(Links) > 0
        THEN [fs_span_key(fs_trace_key(l.TraceId), l.SpanId) for l in Links] END AS LinkKeys,
    CASE WHEN SpanKind = 'Consumer' AND len(Links) > 0
        THEN [l.TraceId for l in Links if l.TraceId <> TraceId] END AS LinkTraceIds,
    len(Links) > 0 AND len([l for l in Links
        if l.SpanId = ParentSpanId
        AND coalesce(l.Attributes['opentracing.ref_type'], '') = 'follows_from']) > 0 AS FollowsFrom,
    CASE WHEN ParentSpanId = '' THEN SpanId END AS RootSpanId,
    CASE WHEN ParentSpanId = '' THEN StatusCode END AS RootStatus,
    SpanAttributes AS Attributes,
    ResourceAttributes AS Resource,
    $in_scope AS InScope
FROM otel_traces
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
  AND TraceId IN (SELECT TraceId FROM dv_load WHERE Cluster = $cluster)
