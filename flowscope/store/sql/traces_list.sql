-- Traces with roots in [since, until), and (no flow asked for) traces without a root
-- span whose first span started in it, in $sort order (slowest first, fastest first,
-- most recent first, most spans first). A trace without a root (still in progress, or
-- its root's service sends no spans) is listed as Jaeger and Tempo list it: by its
-- first span, with its spans' extent (first start to last end) as its duration; the
-- analyzer names that span after the limit (traces_first_spans.sql). Filters are
-- switched on by their $filter_* flag; sel_traces (a flow) and span_match
-- (service/operation/attributes) are temp tables the analyzer fills when those
-- filters are on. Two scans, each bounded on its own time column, where one filter on
-- coalesce(RootTs, FirstTs) would read every row group.
WITH listed AS (
    SELECT
        TraceId, RootService, RootOperation, RootTs AS StartTs, RootDuration AS Duration,
        Spans, Services, ErrorSpans, RootStatus, RootRoute,
        [coalesce(RootAttributes[k], RootResource[k], '') for k in CAST($keys AS VARCHAR[])] AS Attrs
    FROM a_trace_index
    WHERE RootTs >= make_timestamp_ns($since) AND RootTs < make_timestamp_ns($until)
    UNION ALL
    SELECT
        TraceId, NULL, NULL, FirstTs, epoch_ns(EndTs) - epoch_ns(FirstTs),
        Spans, Services, ErrorSpans, NULL, NULL, NULL
    FROM a_trace_index
    WHERE NOT $filter_flow AND RootTs IS NULL
      AND FirstTs >= make_timestamp_ns($since) AND FirstTs < make_timestamp_ns($until)
)
SELECT
    TraceId, RootService, RootOperation, epoch_ns(StartTs) AS Start, Duration,
    Spans, Services, ErrorSpans, RootStatus, RootRoute, Attrs
FROM listed
WHERE Duration >= $min_duration_ns
  AND Duration <= $max_duration_ns
  AND (NOT $filter_error OR (ErrorSpans > 0) = $error)
  AND (NOT $filter_flow OR TraceId IN (SELECT TraceId FROM sel_traces))
  AND (NOT $filter_spans OR TraceId IN (SELECT TraceId FROM span_match))
ORDER BY
    CASE $sort
        WHEN 'fastest' THEN Duration
        WHEN 'recent' THEN -epoch_ns(StartTs)
        WHEN 'spans' THEN -Spans
        ELSE -Duration
    END,
    CASE WHEN $sort = 'spans' THEN -Duration END,  -- as many spans: the slowest first
    TraceId
LIMIT $limit
