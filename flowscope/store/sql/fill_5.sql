-- Schema 5's edge_minutes for a file upgraded from 4: the calls derived so far, per
-- minute (traces still queued are derived again and add their change as usual).
INSERT INTO edge_minutes
SELECT
    (date_trunc('minute', Ts) - CASE WHEN CAST(date_trunc('minute', Ts) AS TIMESTAMP_NS) > Ts THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AS Minute,
    EdgeKey,
    Bucket,
    count(*) AS Calls,
    count(*) FILTER (WHERE IsError) AS Errors
FROM edge_calls
GROUP BY ALL;
