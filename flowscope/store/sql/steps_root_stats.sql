-- The steps of every trace rooted at ($service, $operation) in [since, until) -- an
-- automatic flow without --by -- found through span_steps.RootKey: one integer
-- comparison instead of a join with the flow's traces (steps_selected.sql). Same
-- numbers; the critical-path shares summed as integers (nanounits), as there.
SELECT
    '' AS GroupValue,
    x.StepKey,
    count(*) AS Calls,
    sum(CAST(x.FirstInTrace AS INTEGER)) AS Traces,
    sum(CAST(x.IsError AS INTEGER)) AS Errors,
    sum(CAST(x.IsOrigin AS INTEGER)) AS Origins,
    quantile_cont(x.Duration, [0.5, 0.95, 0.99]) AS Duration,
    quantile_cont(x.SelfNs, 0.5) AS SelfP50,
    quantile_cont(x.OffsetNs, 0.5) AS OffsetP50,
    sum(x.CpNano) / 1e9 / $traces AS CpShare
FROM a_span_steps x
WHERE x.RootKey = fs_root_key(CAST($service AS VARCHAR), CAST($operation AS VARCHAR))
  AND x.RootTs >= make_timestamp_ns($since) AND x.RootTs < make_timestamp_ns($until)
GROUP BY x.StepKey
