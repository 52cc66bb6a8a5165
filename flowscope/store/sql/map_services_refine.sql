-- The order statistics the analyzer asks for: the $indexes[i]-th smallest
-- SERVER/CONSUMER duration (0-based) of service $services[i] in bucket $buckets[i]
-- in [since, until), and how many that bucket holds (checked against the histogram).
-- Each wanted bucket's values are sorted once as a list, as in map_edges_refine.sql.
WITH wanted AS (
    SELECT
        unnest(CAST($services AS VARCHAR[])) AS ServiceName,
        unnest(CAST($buckets AS SMALLINT[])) AS Bucket,
        unnest(CAST($indexes AS BIGINT[])) AS Idx
),
sorted AS (
    SELECT s.ServiceName, s.Bucket, list_sort(list(s.Duration)) AS Vals
    FROM a_server_spans s
    SEMI JOIN (SELECT DISTINCT ServiceName, Bucket FROM wanted) w
        ON s.ServiceName = w.ServiceName AND s.Bucket = w.Bucket
    WHERE s.Timestamp >= make_timestamp_ns($since) AND s.Timestamp < make_timestamp_ns($until)
      AND s.Duration BETWEEN $min_duration AND $max_duration
      AND s.Bucket IN (SELECT Bucket FROM wanted)
    GROUP BY s.ServiceName, s.Bucket
)
SELECT w.ServiceName, w.Bucket, w.Idx, s.Vals[w.Idx + 1] AS Value, len(s.Vals) AS N
FROM wanted w JOIN sorted s ON s.ServiceName = w.ServiceName AND s.Bucket = w.Bucket
WHERE w.Idx < len(s.Vals)
