-- As map_edges_refine.sql, for the queue lags of async calls (by their lag bucket).
WITH wanted AS (
    SELECT
        unnest(CAST($keys AS UBIGINT[])) AS EdgeKey,
        unnest(CAST($buckets AS SMALLINT[])) AS Bucket,
        unnest(CAST($indexes AS BIGINT[])) AS Idx
),
sorted AS (
    SELECT c.EdgeKey, c.LagBucket AS Bucket, list_sort(list(c.LagNs)) AS Vals
    FROM a_edge_calls c
    SEMI JOIN (SELECT DISTINCT EdgeKey, Bucket FROM wanted) w
        ON c.EdgeKey = w.EdgeKey AND c.LagBucket = w.Bucket
    WHERE c.Ts >= make_timestamp_ns($since) AND c.Ts < make_timestamp_ns($until)
      AND c.LagBucket IN (SELECT Bucket FROM wanted)
    GROUP BY c.EdgeKey, c.LagBucket
)
SELECT w.EdgeKey, w.Bucket, w.Idx, s.Vals[w.Idx + 1] AS Value, len(s.Vals) AS N
FROM wanted w JOIN sorted s ON s.EdgeKey = w.EdgeKey AND s.Bucket = w.Bucket
WHERE w.Idx < len(s.Vals)
