-- Service nodes from service_minutes for the whole minutes of the window
-- ([$full_lo, $full_hi)), and from the spans themselves for the partial minutes at
-- its ends: spans, errors and a log histogram (Bucket >= 0) of SERVER/CONSUMER
-- durations, from which the analyzer finds the exact P95 (map_services_refine.sql).
WITH counted AS (
    SELECT ServiceName, Bucket, Spans, Errors FROM a_service_minutes
    WHERE Minute >= make_timestamp_ns($full_lo) AND Minute < make_timestamp_ns($full_hi)
    UNION ALL
    SELECT ServiceName, Bucket, 1 AS Spans, CAST(IsError AS INTEGER) AS Errors
    FROM a_span_service_facts
    WHERE (Timestamp >= make_timestamp_ns($since) AND Timestamp < make_timestamp_ns($full_lo))
       OR (Timestamp >= make_timestamp_ns($full_hi) AND Timestamp < make_timestamp_ns($until))
)
SELECT ServiceName, Bucket, sum(Spans) AS Spans, sum(Errors) AS Errors
FROM counted
GROUP BY ServiceName, Bucket
