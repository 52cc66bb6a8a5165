-- The traces in scope, and their 64-bit id hashes: derived rows are found (replaced by
-- dv_persist.sql, set aside by overlay_pending.sql) by that integer first.
CREATE OR REPLACE TEMP TABLE dv_want AS SELECT TraceId FROM dv_scope;
CREATE OR REPLACE TEMP TABLE dv_scope_keys AS SELECT DISTINCT hash(TraceId) AS TraceKey FROM dv_scope;
-- The numbers of those derived before: their per-span and per-call rows are named by
-- them, and keep them when derived again.
CREATE OR REPLACE TEMP TABLE dv_scope_nos AS
SELECT TraceKey, TraceNo FROM trace_index SEMI JOIN dv_scope_keys USING (TraceKey);
