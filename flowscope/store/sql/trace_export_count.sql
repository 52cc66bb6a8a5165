-- How many spans a trace has, to check an export read each once (its pages are
-- separate queries: spans arriving or deleted between them shift the offsets).
SELECT count(*) FROM otel_traces WHERE TraceId = $trace_id
