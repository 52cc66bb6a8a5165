-- The order statistics the analyzer asks for: the $indexes[i]-th smallest
-- SERVER/CONSUMER duration (0-based) of service $services[i] in bucket $buckets[i]
-- in [since, until), and how many that bucket holds (checked against the histogram).
WITH wanted AS (
    SELECT
        unnest(CAST($services AS VARCHAR[])) AS ServiceName,
        unnest(CAST($buckets AS SMALLINT[])) AS Bucket,
        unnest(CAST($indexes AS BIGINT[])) AS Idx
),
ranked AS (
    SELECT
        s.ServiceName, s.Bucket, s.Duration AS Value,
        row_number() OVER (PARTITION BY s.ServiceName, s.Bucket ORDER BY s.Duration) - 1 AS Idx,
        count(*) OVER (PARTITION BY s.ServiceName, s.Bucket) AS N
    FROM a_server_spans s
    SEMI JOIN (SELECT DISTINCT ServiceName, Bucket FROM wanted) w
        ON s.ServiceName = w.ServiceName AND s.Bucket = w.Bucket
    WHERE s.Timestamp >= make_timestamp_ns($since) AND s.Timestamp < make_timestamp_ns($until)
      AND s.Duration BETWEEN $min_duration AND $max_duration
      AND s.Bucket IN (SELECT Bucket FROM wanted)
)
SELECT r.ServiceName, r.Bucket, r.Idx, r.Value, r.N
FROM ranked r
SEMI JOIN wanted w ON r.ServiceName = w.ServiceName AND r.Bucket = w.Bucket AND r.Idx = w.Idx
