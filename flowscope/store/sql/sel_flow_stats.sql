-- Flow statistics of the selected traces, per flow and --by group ('' without --by).
SELECT
    s.FlowId,
    coalesce(g.GroupValue, '') AS GroupValue,
    count(*) AS Traces,
    count(*) FILTER (WHERE s.RootStatus = 'Error') AS ErrorTraces,
    count(*) FILTER (WHERE s.ErrorSpans > 0) AS TracesWithSpanErrors,
    quantile_cont(s.RootDuration, [0.5, 0.95, 0.99]) AS Duration
FROM sel_traces s
LEFT JOIN sel_groups g USING (TraceId)
GROUP BY ALL
