-- The steps of every trace rooted at ($service, $operation) in [since, until) -- an
-- automatic flow without --by -- found through span_steps.RootKey, no join: counts
-- and the critical-path shares summed as integers (nanounits), as steps_selected.sql.
SELECT
    x.StepKey,
    count(*) AS Calls,
    count(*) FILTER (WHERE x.FirstInTrace) AS Traces,
    count(*) FILTER (WHERE x.IsError) AS Errors,
    count(*) FILTER (WHERE x.IsOrigin) AS Origins,
    sum(CAST(round(x.CpFraction * 1e9) AS BIGINT)) AS CpNano
FROM a_span_steps x
WHERE x.RootKey = hash($service, $operation)
  AND x.RootTs >= make_timestamp_ns($since) AND x.RootTs < make_timestamp_ns($until)
GROUP BY x.StepKey
