-- The traces in scope: sql/dv_plan_load.sql finds their stored trace_index rows, and
-- sql/dv_scope_nos.sql keeps their numbers, by which all their stored rows are replaced
-- (dv_persist.sql) or set aside (overlay_pending.sql).
CREATE OR REPLACE TEMP TABLE dv_want AS SELECT TraceId FROM dv_scope;
