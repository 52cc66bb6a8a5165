-- Whether trace $trace_id waits for derivation (queued, or spans not taken in yet).
SELECT
    (SELECT count(*) FROM derive_queue WHERE TraceId = $trace_id)
    + (SELECT count(*) FROM otel_traces
       WHERE CommitSeq > (SELECT max(DerivedSeq) FROM derive_state) AND TraceId = $trace_id)
