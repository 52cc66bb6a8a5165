-- The traces in scope, and their 64-bit id hashes: derived rows are found (replaced by
-- dv_persist.sql, set aside by overlay_pending.sql) by that integer first.
CREATE OR REPLACE TEMP TABLE dv_want AS SELECT TraceId FROM dv_scope;
CREATE OR REPLACE TEMP TABLE dv_scope_keys AS SELECT DISTINCT hash(TraceId) AS TraceKey FROM dv_scope;
