-- Traces with a span of $service (any when NULL) named $operation (any when NULL) that
-- has every attribute $keys[i] = $values[i] (a span's own, else its resource's; as
-- Tempo's { span.a = x && span.b = y }: all on one span), among spans that started
-- in [lo, hi].
CREATE OR REPLACE TEMP TABLE span_match AS
SELECT DISTINCT TraceId FROM a_spans
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
  AND ($service IS NULL OR ServiceName = $service)
  AND ($operation IS NULL OR SpanName = $operation)
  AND len([i FOR i IN range(1, len(CAST($keys AS VARCHAR[])) + 1)
      IF coalesce(SpanAttributes[CAST($keys AS VARCHAR[])[i]], ResourceAttributes[CAST($keys AS VARCHAR[])[i]])
          IS DISTINCT FROM CAST($values AS VARCHAR[])[i]]) = 0
