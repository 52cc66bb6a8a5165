-- The order statistics the analyzer asks for: the $indexes[i]-th smallest value
-- (0-based) of metric $metrics[i] (0 duration, 1 self time, 2 start offset) among the
-- rows of step $keys[i] in bucket $buckets[i], and how many the bucket holds.
WITH wanted AS (
    SELECT
        unnest(CAST($keys AS UBIGINT[])) AS StepKey,
        unnest(CAST($metrics AS INTEGER[])) AS Metric,
        unnest(CAST($buckets AS SMALLINT[])) AS Bucket,
        unnest(CAST($indexes AS BIGINT[])) AS Idx
),
x AS (
    SELECT StepKey, Duration, SelfNs, OffsetNs
    FROM a_span_steps
    WHERE RootKey = hash($service, $operation)
      AND RootTs >= make_timestamp_ns($since) AND RootTs < make_timestamp_ns($until)
      AND StepKey IN (SELECT StepKey FROM wanted)
),
v AS (
    SELECT StepKey, m.Metric, CASE m.Metric WHEN 0 THEN Duration WHEN 1 THEN SelfNs ELSE OffsetNs END AS Value
    FROM x CROSS JOIN (VALUES (0), (1), (2)) m(Metric)
),
b AS (
    SELECT StepKey, Metric, CAST(floor(log2(greatest(Value, 1)) * 8) AS SMALLINT) AS Bucket, Value
    FROM v
),
ranked AS (
    SELECT
        b.StepKey, b.Metric, b.Bucket, b.Value,
        row_number() OVER (PARTITION BY b.StepKey, b.Metric, b.Bucket ORDER BY b.Value) - 1 AS Idx,
        count(*) OVER (PARTITION BY b.StepKey, b.Metric, b.Bucket) AS N
    FROM b
    SEMI JOIN (SELECT DISTINCT StepKey, Metric, Bucket FROM wanted) w
        ON b.StepKey = w.StepKey AND b.Metric = w.Metric AND b.Bucket = w.Bucket
)
SELECT r.StepKey, r.Metric, r.Bucket, r.Idx, r.Value, r.N
FROM ranked r
SEMI JOIN wanted w
    ON r.StepKey = w.StepKey AND r.Metric = w.Metric AND r.Bucket = w.Bucket AND r.Idx = w.Idx
