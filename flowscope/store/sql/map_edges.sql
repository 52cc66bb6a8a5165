-- Service map edges: calls whose measured span started in [since, until).
SELECT
    k.Source, k.Target, k.Rule, k.TargetKind, k.MessagingSystem, k.Destination,
    e.Calls, e.Errors, e.Latency, e.Lag
FROM (
    SELECT
        EdgeKey,
        count(*) AS Calls,
        count(*) FILTER (WHERE IsError) AS Errors,
        quantile_cont(LatencyNs, [0.5, 0.95, 0.99]) AS Latency,
        quantile_cont(LagNs, [0.5, 0.95, 0.99]) AS Lag
    FROM a_edge_calls
    WHERE Ts >= make_timestamp_ns($since) AND Ts < make_timestamp_ns($until)
    GROUP BY EdgeKey
) e
JOIN a_edge_keys k USING (EdgeKey)
ORDER BY k.Source, k.Target, k.Rule, k.MessagingSystem, k.Destination
