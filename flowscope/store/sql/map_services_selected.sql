-- Service nodes of the selected traces (sel_traces).
SELECT
    ServiceName,
    count(*) AS Spans,
    count(*) FILTER (WHERE StatusCode = 'Error') AS Errors,
    quantile_cont(greatest(Duration, 0), 0.95) FILTER (WHERE SpanKind IN ('Server', 'Consumer')) AS P95
FROM a_spans
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
  AND TraceId IN (SELECT TraceId FROM sel_traces)
GROUP BY ServiceName
ORDER BY ServiceName
