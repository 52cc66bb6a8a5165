-- edge_minutes gets a row of change per derivation pass: merge the minutes that pass
-- touched ([$lo, $hi], the derived traces' span range) into one row per (minute,
-- edge, bucket), dropping buckets whose calls netted out.
CREATE OR REPLACE TEMP TABLE dv_edge_minutes_merged AS
SELECT Minute, EdgeKey, Bucket, sum(Calls) AS Calls, sum(Errors) AS Errors
FROM edge_minutes
WHERE Minute BETWEEN (date_trunc('minute', make_timestamp_ns($lo)) - CASE WHEN CAST(date_trunc('minute', make_timestamp_ns($lo)) AS TIMESTAMP_NS) > make_timestamp_ns($lo) THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AND make_timestamp_ns($hi)
GROUP BY ALL
HAVING sum(Calls) <> 0 OR sum(Errors) <> 0;
DELETE FROM edge_minutes
WHERE Minute BETWEEN (date_trunc('minute', make_timestamp_ns($lo)) - CASE WHEN CAST(date_trunc('minute', make_timestamp_ns($lo)) AS TIMESTAMP_NS) > make_timestamp_ns($lo) THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AND make_timestamp_ns($hi);
-- In key order: runs of one edge's random 64-bit key are stored as runs (5.5 -> 1.6
-- bytes a span at 1M spans, docs/benchmarks.md, disk); no read depends on row order.
INSERT INTO edge_minutes SELECT * FROM dv_edge_minutes_merged ORDER BY Minute, EdgeKey, Bucket;
