-- The dedup keys' parts of stored spans among a batch being imported again (its trace
-- ids, within its start times: a stored copy of one of its spans started when it
-- did), for a path an earlier import read (in part, or a file grown since): those
-- spans may be long out of the dedup window by now.
SELECT TraceId, SpanId, SpanKind = 'Server', ServiceName
FROM otel_traces
WHERE Timestamp >= make_timestamp_ns($lo) AND Timestamp <= make_timestamp_ns($hi)
  AND TraceId IN (SELECT unnest($trace_ids))
