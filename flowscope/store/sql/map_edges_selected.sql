-- Service map edges of the selected traces (sel_traces): calls made in them, or
-- async calls whose producer is in them.
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
    WHERE TraceNo IN (SELECT TraceNo FROM sel_traces)
       OR SourceTraceKey IN (SELECT TraceKey FROM sel_traces)
    GROUP BY EdgeKey
) e
JOIN a_edge_keys k USING (EdgeKey)
ORDER BY k.Source, k.Target, k.Rule, k.MessagingSystem, k.Destination
