-- The numbers of the traces in scope that were derived before (their stored rows,
-- found by sql/dv_plan_load.sql): their per-span and per-call rows are named by them,
-- and they keep them when derived again.
CREATE OR REPLACE TEMP TABLE dv_scope_nos AS SELECT TraceKey, TraceNo FROM dv_known;
