-- The order statistics the analyzer asks for: the $indexes[i]-th smallest latency
-- (0-based) among the calls of edge $keys[i] in bucket $buckets[i] in [since,
-- until), and how many calls that bucket holds (checked against the histogram).
-- Each wanted bucket's values are sorted once as a list (a window's row_number over
-- the same rows costs more).
WITH wanted AS (
    SELECT
        unnest(CAST($keys AS UBIGINT[])) AS EdgeKey,
        unnest(CAST($buckets AS SMALLINT[])) AS Bucket,
        unnest(CAST($indexes AS BIGINT[])) AS Idx
),
sorted AS (
    SELECT c.EdgeKey, c.Bucket, list_sort(list(c.LatencyNs)) AS Vals
    FROM a_edge_calls c
    SEMI JOIN (SELECT DISTINCT EdgeKey, Bucket FROM wanted) w
        ON c.EdgeKey = w.EdgeKey AND c.Bucket = w.Bucket
    WHERE c.Ts >= make_timestamp_ns($since) AND c.Ts < make_timestamp_ns($until)
      AND c.Bucket IN (SELECT Bucket FROM wanted)
    GROUP BY c.EdgeKey, c.Bucket
)
SELECT w.EdgeKey, w.Bucket, w.Idx, s.Vals[w.Idx + 1] AS Value, len(s.Vals) AS N
FROM wanted w JOIN sorted s ON s.EdgeKey = w.EdgeKey AND s.Bucket = w.Bucket
WHERE w.Idx < len(s.Vals)
