-- The first span of each listed trace that has no root span (traces_list.sql): its
-- service and name stand where a root's would. First spans start at the traces'
-- FirstTs, all within [lo, hi], which bounds the scan.
SELECT TraceId, arg_min(ServiceName, (Timestamp, SpanId)), arg_min(SpanName, (Timestamp, SpanId))
FROM a_spans
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
  AND TraceId IN (SELECT unnest(CAST($ids AS VARCHAR[])))
GROUP BY TraceId
