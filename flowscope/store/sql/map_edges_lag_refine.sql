-- As map_edges_refine.sql, for the queue lags of async calls (by their lag bucket).
WITH wanted AS (
    SELECT
        unnest(CAST($keys AS UBIGINT[])) AS EdgeKey,
        unnest(CAST($buckets AS SMALLINT[])) AS Bucket,
        unnest(CAST($indexes AS BIGINT[])) AS Idx
),
ranked AS (
    SELECT
        c.EdgeKey, c.LagBucket AS Bucket, c.LagNs AS Value,
        row_number() OVER (PARTITION BY c.EdgeKey, c.LagBucket ORDER BY c.LagNs) - 1 AS Idx,
        count(*) OVER (PARTITION BY c.EdgeKey, c.LagBucket) AS N
    FROM a_edge_calls c
    SEMI JOIN (SELECT DISTINCT EdgeKey, Bucket FROM wanted) w
        ON c.EdgeKey = w.EdgeKey AND c.LagBucket = w.Bucket
    WHERE c.Ts >= make_timestamp_ns($since) AND c.Ts < make_timestamp_ns($until)
      AND c.LagBucket IN (SELECT Bucket FROM wanted)
)
SELECT r.EdgeKey, r.Bucket, r.Idx, r.Value, r.N
FROM ranked r SEMI JOIN wanted w ON r.EdgeKey = w.EdgeKey AND r.Bucket = w.Bucket AND r.Idx = w.Idx
