-- Derivation: what replacing the scope's edge_calls rows (sql/dv_persist.sql) changes
-- in edge_minutes: minus the stored calls of the traces in scope (those dv_persist
-- deletes: within the scope's span range [$lo, $hi]), plus their calls as derived now.
-- dv_persist adds it to edge_minutes; a reader's overlay adds it to what is stored.
-- A span's minute is date_trunc's, less a minute when that rounded up: on a
-- TIMESTAMP_NS it rounds to microseconds first, and the last 0.5 us of a minute went
-- to the next one (counted twice or not at all by windows ending at that minute).
CREATE OR REPLACE TEMP TABLE dv_edge_minutes AS
SELECT Minute, EdgeKey, Bucket, sum(Calls) AS Calls, sum(Errors) AS Errors
FROM (
    SELECT
        (date_trunc('minute', Ts) - CASE WHEN CAST(date_trunc('minute', Ts) AS TIMESTAMP_NS) > Ts THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AS Minute, EdgeKey, Bucket,
        -count(*) AS Calls, -count(*) FILTER (WHERE IsError) AS Errors
    FROM edge_calls
    WHERE Ts BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
      AND TraceNo IN (SELECT TraceNo FROM dv_scope_nos)
    GROUP BY ALL
    UNION ALL
    SELECT
        (date_trunc('minute', Ts) - CASE WHEN CAST(date_trunc('minute', Ts) AS TIMESTAMP_NS) > Ts THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AS Minute, EdgeKey, Bucket,
        count(*) AS Calls, count(*) FILTER (WHERE IsError) AS Errors
    FROM dv_edge_calls
    GROUP BY ALL
)
GROUP BY ALL
HAVING sum(Calls) <> 0 OR sum(Errors) <> 0;
