-- A trace set aside by triage leaves the queue: its spans stay stored, and it is queued
-- again (and derived, or set aside again) when more of its spans arrive.
DELETE FROM derive_queue WHERE TraceId IN (SELECT TraceId FROM dv_only_in);
