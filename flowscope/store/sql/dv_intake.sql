-- Derivation, step 0 (derive thread, in its transaction): take in the spans committed
-- since the last pass (CommitSeq above the mark): queue their traces, count them per
-- service and minute (with a log histogram, 8 buckets per doubling, of SERVER/CONSUMER
-- durations), keep the SERVER/CONSUMER durations, and move the mark. Commits write
-- nothing but spans; readers see the same rows through the a_* views meanwhile.
CREATE OR REPLACE TEMP TABLE dv_new_spans AS
SELECT TraceId, Timestamp, ServiceName, SpanKind, Duration, StatusCode, CommitSeq
FROM otel_traces
WHERE CommitSeq > (SELECT max(DerivedSeq) FROM derive_state);
INSERT INTO derive_queue
SELECT TraceId, min(Timestamp), max(Timestamp) FROM dv_new_spans GROUP BY TraceId;
INSERT INTO service_minutes
SELECT
    date_trunc('minute', Timestamp) AS Minute,
    ServiceName,
    CASE WHEN SpanKind IN ('Server', 'Consumer')
        THEN CAST(floor(log2(greatest(Duration, 1)) * 8) AS SMALLINT)
        ELSE CAST(-1 AS SMALLINT) END AS Bucket,
    count(*) AS Spans,
    count(*) FILTER (WHERE StatusCode = 'Error') AS Errors
FROM dv_new_spans
GROUP BY ALL;
INSERT INTO server_spans
SELECT Timestamp, ServiceName, Duration, CAST(floor(log2(greatest(Duration, 1)) * 8) AS SMALLINT)
FROM dv_new_spans
WHERE SpanKind IN ('Server', 'Consumer');
UPDATE derive_state
SET DerivedSeq = coalesce((SELECT max(CommitSeq) FROM dv_new_spans), DerivedSeq);
