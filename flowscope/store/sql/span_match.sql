-- Traces with a span of $service (any when NULL) named $operation (any when NULL),
-- among spans that started in [lo, hi].
CREATE OR REPLACE TEMP TABLE span_match AS
SELECT DISTINCT TraceId FROM a_spans
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
  AND ($service IS NULL OR ServiceName = $service)
  AND ($operation IS NULL OR SpanName = $operation)
