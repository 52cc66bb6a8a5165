-- Flows without a flows file: traces grouped by their root's (service, operation);
-- with $service and $operation, just that root's flow.
SELECT
    RootService,
    RootOperation,
    count(*) AS Traces,
    count(*) FILTER (WHERE RootStatus = 'Error') AS ErrorTraces,
    count(*) FILTER (WHERE ErrorSpans > 0) AS TracesWithSpanErrors,
    quantile_cont(RootDuration, [0.5, 0.95, 0.99]) AS Duration
FROM a_trace_index
WHERE RootTs >= make_timestamp_ns($since) AND RootTs < make_timestamp_ns($until)
  AND ($service IS NULL OR (RootService = $service AND RootOperation = $operation))
GROUP BY RootService, RootOperation
