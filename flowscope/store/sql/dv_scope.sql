-- Derivation, step 1b: the traces to derive: the queued ones (dv_begin.sql), plus the
-- traces of CONSUMER spans that link into them (their async edges need the producer).
CREATE OR REPLACE TEMP TABLE dv_scope AS
SELECT TraceId FROM dv_queue
UNION
SELECT l.TraceId FROM trace_links l SEMI JOIN dv_queue q ON l.LinkedTraceId = q.TraceId;
