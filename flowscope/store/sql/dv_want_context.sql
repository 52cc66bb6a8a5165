-- Traces that in-scope CONSUMER spans link to (registered as dv_linked_in): loaded
-- for their producer spans, read but not derived.
CREATE OR REPLACE TEMP TABLE dv_want AS
SELECT DISTINCT TraceId FROM dv_linked_in WHERE TraceId NOT IN (SELECT TraceId FROM dv_scope);
