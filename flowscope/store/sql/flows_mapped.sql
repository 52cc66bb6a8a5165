-- Flow statistics when a flows file maps root facts to flows (see select_traces.sql).
WITH facts AS (
    SELECT
        unnest(CAST($flow_ids AS VARCHAR[])) AS FlowId,
        unnest(CAST($services AS VARCHAR[])) AS RootService,
        unnest(CAST($operations AS VARCHAR[])) AS RootOperation,
        unnest(CAST($routes AS VARCHAR[])) AS Route,
        unnest(CAST($attrs AS VARCHAR[][])) AS Attrs
)
SELECT
    f.FlowId,
    count(*) AS Traces,
    count(*) FILTER (WHERE t.RootStatus = 'Error') AS ErrorTraces,
    count(*) FILTER (WHERE t.ErrorSpans > 0) AS TracesWithSpanErrors,
    quantile_cont(t.RootDuration, [0.5, 0.95, 0.99]) AS Duration
FROM a_trace_index t
JOIN facts f
  ON t.RootService = f.RootService
 AND t.RootOperation = f.RootOperation
 AND (CASE WHEN $use_route THEN t.RootRoute ELSE '' END) = f.Route
 AND [coalesce(t.RootAttributes[k], t.RootResource[k], '') for k in CAST($keys AS VARCHAR[])] = f.Attrs
WHERE t.RootTs >= make_timestamp_ns($since) AND t.RootTs < make_timestamp_ns($until)
GROUP BY f.FlowId
