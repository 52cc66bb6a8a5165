-- Traces that wait for derivation: queued, or with spans not taken in yet.
SELECT count(*) FROM (
    SELECT TraceId FROM derive_queue UNION SELECT TraceId FROM untaken_spans
)
