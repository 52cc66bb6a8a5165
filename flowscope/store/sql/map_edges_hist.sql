-- Per edge, the calls in [since, until) by latency histogram bucket, with their
-- errors: counts, and where each exact percentile's values lie. The whole minutes of
-- the window ([$full_lo, $full_hi)) come from edge_minutes, the partial minutes at
-- its ends from the calls themselves.
WITH counted AS (
    SELECT EdgeKey, Bucket, Calls, Errors FROM a_edge_minutes
    WHERE Minute >= make_timestamp_ns($full_lo) AND Minute < make_timestamp_ns($full_hi)
    UNION ALL
    SELECT EdgeKey, Bucket, 1 AS Calls, CAST(IsError AS INTEGER) AS Errors FROM a_edge_calls
    WHERE Ts >= make_timestamp_ns($since) AND Ts < make_timestamp_ns($full_lo)
    UNION ALL
    SELECT EdgeKey, Bucket, 1 AS Calls, CAST(IsError AS INTEGER) AS Errors FROM a_edge_calls
    WHERE Ts >= make_timestamp_ns($full_hi) AND Ts < make_timestamp_ns($until)
)
SELECT EdgeKey, Bucket, sum(Calls) AS Calls, sum(Errors) AS Errors
FROM counted
GROUP BY EdgeKey, Bucket
HAVING sum(Calls) > 0
