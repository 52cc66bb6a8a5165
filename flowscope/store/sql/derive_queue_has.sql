-- Whether trace $trace_id waits for derivation (queued, or spans not taken in yet).
SELECT
    (SELECT count(*) FROM derive_queue WHERE TraceId = $trace_id)
    + (SELECT count(*) FROM untaken_spans WHERE TraceId = $trace_id)
