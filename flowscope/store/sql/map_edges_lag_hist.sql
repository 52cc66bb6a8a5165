-- Per async edge, its calls in [since, until) by queue-lag histogram bucket.
SELECT EdgeKey, LagBucket, count(*) AS Calls
FROM a_edge_calls
WHERE Ts >= make_timestamp_ns($since) AND Ts < make_timestamp_ns($until) AND LagBucket IS NOT NULL
GROUP BY EdgeKey, LagBucket
