-- Traces that in-scope CONSUMER spans link to: loaded for their producer spans only.
CREATE OR REPLACE TEMP TABLE dv_want AS
SELECT DISTINCT r.TraceId
FROM (SELECT unnest(LinkRefs) AS r FROM dv_spans WHERE InScope AND LinkRefs IS NOT NULL)
WHERE r.TraceId NOT IN (SELECT TraceId FROM dv_scope);
