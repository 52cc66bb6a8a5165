-- service_minutes gets rows with every commit; merge the rows of the minutes that the
-- derived traces touched into one row per (minute, service, bucket).
CREATE OR REPLACE TEMP TABLE dv_service_minutes AS
SELECT Minute, ServiceName, Bucket, sum(Spans) AS Spans, sum(Errors) AS Errors
FROM service_minutes
WHERE Minute BETWEEN (date_trunc('minute', make_timestamp_ns($lo)) - CASE WHEN CAST(date_trunc('minute', make_timestamp_ns($lo)) AS TIMESTAMP_NS) > make_timestamp_ns($lo) THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AND make_timestamp_ns($hi)
GROUP BY ALL;
DELETE FROM service_minutes
WHERE Minute BETWEEN (date_trunc('minute', make_timestamp_ns($lo)) - CASE WHEN CAST(date_trunc('minute', make_timestamp_ns($lo)) AS TIMESTAMP_NS) > make_timestamp_ns($lo) THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AND make_timestamp_ns($hi);
INSERT INTO service_minutes SELECT * FROM dv_service_minutes ORDER BY Minute, ServiceName, Bucket;
