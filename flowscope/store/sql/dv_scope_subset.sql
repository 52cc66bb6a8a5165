-- Triage (store/deriver.py, derivation.set_aside_failing): derive only the queued
-- traces in dv_only_in, and the traces linked to them, to find which trace makes every
-- pass fail.
DELETE FROM dv_queue WHERE TraceId NOT IN (SELECT TraceId FROM dv_only_in);
DELETE FROM dv_scope
WHERE TraceId NOT IN (SELECT TraceId FROM dv_queue)
  AND TraceId NOT IN (
      SELECT l.TraceId FROM trace_links l SEMI JOIN dv_queue q ON l.LinkedTraceId = q.TraceId
  );
