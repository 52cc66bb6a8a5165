-- What a trace view shows about each span of one trace.
SELECT SpanId, StatusCode, StatusMessage, SpanAttributes, epoch_ns(Timestamp) AS Start
FROM otel_traces
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi) AND TraceId = $trace_id
