-- Derivation, step 1: which traces to derive. The queued traces and those of spans not
-- taken in yet (a reader's view; the derive thread took them in just before), plus the
-- traces of CONSUMER spans that link into them (their async edges need the producer).
CREATE OR REPLACE TEMP TABLE dv_queue AS
SELECT TraceId, min(FirstTs) AS FirstTs, max(LastTs) AS LastTs
FROM (
    SELECT TraceId, FirstTs, LastTs FROM derive_queue
    UNION ALL
    SELECT TraceId, Timestamp, Timestamp FROM untaken_spans
)
GROUP BY TraceId;

CREATE OR REPLACE TEMP TABLE dv_scope AS
SELECT TraceId FROM dv_queue
UNION
SELECT l.TraceId FROM trace_links l SEMI JOIN dv_queue q ON l.LinkedTraceId = q.TraceId;
