-- Service nodes: spans that started in [since, until), their errors, and the P95 of
-- their SERVER/CONSUMER spans.
SELECT
    ServiceName,
    count(*) AS Spans,
    count(*) FILTER (WHERE StatusCode = 'Error') AS Errors,
    quantile_cont(greatest(Duration, 0), 0.95) FILTER (WHERE SpanKind IN ('Server', 'Consumer')) AS P95
FROM a_spans
WHERE Timestamp >= make_timestamp_ns($since) AND Timestamp < make_timestamp_ns($until)
GROUP BY ServiceName
ORDER BY ServiceName
