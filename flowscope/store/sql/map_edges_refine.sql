-- The order statistics the analyzer asks for: the $indexes[i]-th smallest latency
-- (0-based) among the calls of edge $keys[i] in bucket $buckets[i] in [since,
-- until), and how many calls that bucket holds (checked against the histogram).
WITH wanted AS (
    SELECT
        unnest(CAST($keys AS UBIGINT[])) AS EdgeKey,
        unnest(CAST($buckets AS SMALLINT[])) AS Bucket,
        unnest(CAST($indexes AS BIGINT[])) AS Idx
),
ranked AS (
    SELECT
        c.EdgeKey, c.Bucket, c.LatencyNs AS Value,
        row_number() OVER (PARTITION BY c.EdgeKey, c.Bucket ORDER BY c.LatencyNs) - 1 AS Idx,
        count(*) OVER (PARTITION BY c.EdgeKey, c.Bucket) AS N
    FROM a_edge_calls c
    SEMI JOIN (SELECT DISTINCT EdgeKey, Bucket FROM wanted) w
        ON c.EdgeKey = w.EdgeKey AND c.Bucket = w.Bucket
    WHERE c.Ts >= make_timestamp_ns($since) AND c.Ts < make_timestamp_ns($until)
      AND c.Bucket IN (SELECT Bucket FROM wanted)
)
SELECT r.EdgeKey, r.Bucket, r.Idx, r.Value, r.N
FROM ranked r SEMI JOIN wanted w ON r.EdgeKey = w.EdgeKey AND r.Bucket = w.Bucket AND r.Idx = w.Idx
