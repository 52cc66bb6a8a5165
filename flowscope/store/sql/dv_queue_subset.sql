-- Triage (store/deriver.py, derivation.set_aside_failing): derive only the queued
-- traces in dv_only_in (and, through dv_scope.sql, the traces linked to them), to find
-- which trace makes every pass fail.
DELETE FROM dv_queue WHERE TraceId NOT IN (SELECT TraceId FROM dv_only_in);
