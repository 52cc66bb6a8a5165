-- The queued traces, oldest first (triage splits them in halves).
SELECT TraceId FROM derive_queue GROUP BY TraceId ORDER BY min(FirstTs), TraceId;
