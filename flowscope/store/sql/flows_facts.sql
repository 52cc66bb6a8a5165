-- The distinct root facts a flows file can match on, among roots in [since, until).
SELECT
    RootService,
    RootOperation,
    CASE WHEN $use_route THEN RootRoute ELSE '' END AS Route,
    [coalesce(RootAttributes[k], RootResource[k], '') for k in CAST($keys AS VARCHAR[])] AS Attrs,
    count(*) AS Traces
FROM a_trace_index
WHERE RootTs >= make_timestamp_ns($since) AND RootTs < make_timestamp_ns($until)
GROUP BY ALL
