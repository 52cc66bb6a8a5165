-- Per edge, the calls in [since, until) by latency histogram bucket, with their
-- errors: counts, and where each exact percentile's values lie.
SELECT EdgeKey, Bucket, count(*) AS Calls, count(*) FILTER (WHERE IsError) AS Errors
FROM a_edge_calls
WHERE Ts >= make_timestamp_ns($since) AND Ts < make_timestamp_ns($until)
GROUP BY EdgeKey, Bucket
