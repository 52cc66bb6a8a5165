-- Derivation, step 1: the queue. The queued traces and those of spans not taken in yet
-- (a reader's view; the derive thread took them in just before). dv_scope.sql adds the
-- traces linked to them.
CREATE OR REPLACE TEMP TABLE dv_queue AS
SELECT TraceId, min(FirstTs) AS FirstTs, max(LastTs) AS LastTs
FROM (
    SELECT TraceId, FirstTs, LastTs FROM derive_queue
    UNION ALL
    SELECT TraceId, Timestamp, Timestamp FROM untaken_spans
)
GROUP BY TraceId;
