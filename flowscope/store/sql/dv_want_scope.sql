-- The traces in scope, and their 64-bit id hashes: their stored trace_index rows are
-- found (replaced by dv_persist.sql, set aside by overlay_pending.sql) by that integer
-- first, their per-span and per-call rows by their numbers (sql/dv_scope_nos.sql).
CREATE OR REPLACE TEMP TABLE dv_want AS SELECT TraceId FROM dv_scope;
CREATE OR REPLACE TEMP TABLE dv_scope_keys AS SELECT DISTINCT hash(TraceId) AS TraceKey FROM dv_scope;
