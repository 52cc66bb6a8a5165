-- The numbers of the traces in scope that were derived before (their stored rows,
-- found by sql/dv_plan_load.sql for the scope: run right after it, before the linked
-- traces' load replaces dv_known): their per-span and per-call rows are named by them,
-- and they keep them when derived again.
CREATE OR REPLACE TEMP TABLE dv_scope_nos AS SELECT TraceKey, TraceId, TraceNo FROM dv_known;
