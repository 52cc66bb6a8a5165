-- Log histograms (8 buckets per doubling) of the same rows' duration (metric 0), self
-- time (1) and start offset (2) per step: which buckets hold each percentile's ranks
-- (analyzer/histogram_quantiles.py); steps_root_refine.sql then reads only those.
WITH x AS (
    SELECT StepKey, Duration, SelfNs, OffsetNs
    FROM a_span_steps
    WHERE RootKey = hash($service, $operation)
      AND RootTs >= make_timestamp_ns($since) AND RootTs < make_timestamp_ns($until)
),
v AS (
    SELECT StepKey, m.Metric, CASE m.Metric WHEN 0 THEN Duration WHEN 1 THEN SelfNs ELSE OffsetNs END AS Value
    FROM x CROSS JOIN (VALUES (0), (1), (2)) m(Metric)
)
SELECT StepKey, Metric, CAST(floor(log2(greatest(Value, 1)) * 8) AS SMALLINT) AS Bucket, count(*) AS N
FROM v
GROUP BY ALL
