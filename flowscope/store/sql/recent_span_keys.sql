-- The newest spans by start time, to warm the retry dedup window after a restart.
SELECT TraceId, SpanId FROM otel_traces ORDER BY Timestamp DESC LIMIT $limit
