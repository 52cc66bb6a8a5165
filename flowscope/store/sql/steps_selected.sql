-- The steps of the selected traces (sel_traces, rooted in [since, until)), per --by
-- group (sel_groups): counts, exact percentiles and the mean critical-path share
-- over the group's traces, from the derived per-span facts. The shares are summed as
-- integers (nanounits) so the mean does not depend on the order rows are stored in.
WITH traces AS (
    SELECT s.TraceNo, coalesce(g.GroupValue, '') AS GroupValue
    FROM sel_traces s LEFT JOIN sel_groups g USING (TraceId)
),
sizes AS (SELECT GroupValue, count(*) AS Traces FROM traces GROUP BY GroupValue)
SELECT
    t.GroupValue,
    x.StepKey,
    count(*) AS Calls,
    count(*) FILTER (WHERE x.FirstInTrace) AS Traces,
    count(*) FILTER (WHERE x.IsError) AS Errors,
    count(*) FILTER (WHERE x.IsOrigin) AS Origins,
    quantile_cont(x.Duration, [0.5, 0.95, 0.99]) AS Duration,
    quantile_cont(x.SelfNs, 0.5) AS SelfP50,
    quantile_cont(x.OffsetNs, 0.5) AS OffsetP50,
    sum(x.CpNano) / 1e9 / any_value(z.Traces) AS CpShare
FROM a_span_steps x
JOIN traces t USING (TraceNo)
JOIN sizes z USING (GroupValue)
WHERE x.RootTs >= make_timestamp_ns($since) AND x.RootTs < make_timestamp_ns($until)
GROUP BY t.GroupValue, x.StepKey
