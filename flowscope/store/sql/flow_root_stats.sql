-- One automatic flow's statistics: the traces rooted at ($service, $operation) in
-- [since, until), as flows_auto.sql computes them for every root.
SELECT
    count(*) AS Traces,
    count(*) FILTER (WHERE RootStatus = 'Error') AS ErrorTraces,
    count(*) FILTER (WHERE ErrorSpans > 0) AS TracesWithSpanErrors,
    quantile_cont(RootDuration, [0.5, 0.95, 0.99]) AS Duration
FROM a_trace_index
WHERE RootService = $service AND RootOperation = $operation
  AND RootTs >= make_timestamp_ns($since) AND RootTs < make_timestamp_ns($until)
