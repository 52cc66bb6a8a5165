-- Every span of one trace, with what a trace view shows; [lo, hi] bounds their starts
-- (from trace_index), so the scan is pruned to a few row groups.
SELECT
    SpanId, ParentSpanId, ServiceName, SpanName, SpanKind, epoch_ns(Timestamp) AS Start,
    greatest(Duration, 0) AS Duration, StatusCode, StatusMessage,
    -- how many of its attributes and links trace_span_details.sql may return
    cardinality(SpanAttributes) AS AttributeCount,
    len(Links) > 0 AND len([l for l in Links
        if l.SpanId = ParentSpanId
        AND coalesce(l.Attributes['opentracing.ref_type'], '') = 'follows_from']) > 0 AS FollowsFrom,
    -- the critical path's last tie-break, and analyzer/shared_ids.py works on these
    -- keys: as derivation's (dv_load_spans.sql)
    fs_span_key(fs_trace_key(TraceId), SpanId) AS SpanKey,
    CASE WHEN ParentSpanId = '' THEN CAST(0 AS UBIGINT)
        ELSE fs_span_key(fs_trace_key(TraceId), ParentSpanId) END AS ParentKey,
    len(Events) AS EventCount,  -- and of its events
    len(Links) AS LinkCount
FROM otel_traces
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi) AND TraceId = $trace_id
ORDER BY Timestamp, SpanId
