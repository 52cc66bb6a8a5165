-- Whether trace $trace_id waits for derivation.
SELECT count(*) FROM derive_queue WHERE TraceId = $trace_id
