-- Traces with roots in [since, until), in $sort order (slowest first, fastest first,
-- most recent first, most spans first). Filters are switched on by
-- their $filter_* flag; sel_traces (a flow) and span_match (service/operation) are
-- temp tables the analyzer fills when those filters are on (span_match: service,
-- operation, attributes).
SELECT
    TraceId, RootService, RootOperation, epoch_ns(RootTs) AS RootStart, RootDuration,
    Spans, Services, ErrorSpans, RootStatus, RootRoute,
    [coalesce(RootAttributes[k], RootResource[k], '') for k in CAST($keys AS VARCHAR[])] AS Attrs
FROM a_trace_index
WHERE RootTs >= make_timestamp_ns($since) AND RootTs < make_timestamp_ns($until)
  AND RootDuration >= $min_duration_ns
  AND RootDuration <= $max_duration_ns
  AND (NOT $filter_error OR (ErrorSpans > 0) = $error)
  AND (NOT $filter_flow OR TraceId IN (SELECT TraceId FROM sel_traces))
  AND (NOT $filter_spans OR TraceId IN (SELECT TraceId FROM span_match))
ORDER BY
    CASE $sort
        WHEN 'fastest' THEN RootDuration
        WHEN 'recent' THEN -epoch_ns(RootTs)
        WHEN 'spans' THEN -Spans
        ELSE -RootDuration
    END,
    CASE WHEN $sort = 'spans' THEN -RootDuration END,  -- as many spans: the slowest first
    TraceId
LIMIT $limit
