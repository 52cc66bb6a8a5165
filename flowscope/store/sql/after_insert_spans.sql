-- Run by the writer in the transaction that inserts incoming_spans: queue the traces
-- for derivation, count the spans per service and minute, keep SERVER/CONSUMER durations.
INSERT INTO derive_queue
SELECT TraceId, min(Timestamp), max(Timestamp) FROM incoming_spans GROUP BY TraceId;

INSERT INTO service_minutes
SELECT
    date_trunc('minute', Timestamp) AS Minute,
    ServiceName,
    CASE WHEN SpanKind IN ('Server', 'Consumer')
        THEN CAST(floor(log2(greatest(Duration, 1)) * 8) AS SMALLINT)
        ELSE CAST(-1 AS SMALLINT) END AS Bucket,
    count(*) AS Spans,
    count(*) FILTER (WHERE StatusCode = 'Error') AS Errors
FROM incoming_spans
GROUP BY ALL;

INSERT INTO server_spans
SELECT Timestamp, ServiceName, Duration, CAST(floor(log2(greatest(Duration, 1)) * 8) AS SMALLINT)
FROM incoming_spans
WHERE SpanKind IN ('Server', 'Consumer');
