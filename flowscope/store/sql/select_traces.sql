-- The traces with roots in [since, until) whose root facts map to a flow: the mapping
-- comes as parallel lists ($flow_ids, $services, $operations, $routes, $attrs), made
-- by the analyzer from flows_facts rows and the flows file. Only the columns the
-- selection's queries read (copying the attribute maps would dominate).
CREATE OR REPLACE TEMP TABLE sel_traces AS
WITH facts AS (
    SELECT
        unnest(CAST($flow_ids AS VARCHAR[])) AS FlowId,
        unnest(CAST($services AS VARCHAR[])) AS RootService,
        unnest(CAST($operations AS VARCHAR[])) AS RootOperation,
        unnest(CAST($routes AS VARCHAR[])) AS Route,
        unnest(CAST($attrs AS VARCHAR[][])) AS Attrs
)
SELECT
    t.TraceId, t.TraceKey, t.TraceNo, t.FirstTs, t.LastTs, t.RootTs, t.RootSpanId, t.RootDuration,
    t.RootStatus, t.ErrorSpans, f.FlowId
FROM a_trace_index t
JOIN facts f
  ON t.RootService = f.RootService
 AND t.RootOperation = f.RootOperation
 AND (CASE WHEN $use_route THEN t.RootRoute ELSE '' END) = f.Route
 AND [coalesce(t.RootAttributes[k], t.RootResource[k], '') for k in CAST($keys AS VARCHAR[])] = f.Attrs
WHERE t.RootTs >= make_timestamp_ns($since) AND t.RootTs < make_timestamp_ns($until)
