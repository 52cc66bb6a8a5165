-- Schema 8's keys for an upgraded file. The stored keys were hash(TraceId), and
-- traces whose ids hashed alike were derived as one when a pass met them together:
-- every trace sharing its old key with another is queued to be derived again.
CREATE OR REPLACE TEMP TABLE fill_8_ids AS
SELECT hash(TraceId) AS OldKey, TraceId, min(Timestamp) AS FirstTs, max(Timestamp) AS LastTs
FROM otel_traces GROUP BY TraceId;
CREATE OR REPLACE TEMP TABLE fill_8_shared AS
SELECT OldKey FROM fill_8_ids GROUP BY OldKey HAVING count(*) > 1;
-- A linked producer's trace, by its key: the new key where the old one names one id.
UPDATE edge_calls SET SourceTraceKey = k.NewKey
FROM (
    SELECT OldKey, fs_trace_key(TraceId) AS NewKey FROM fill_8_ids ANTI JOIN fill_8_shared USING (OldKey)
) k
WHERE edge_calls.SourceTraceKey <> 0 AND edge_calls.SourceTraceKey = k.OldKey;
-- Derived again: the traces that shared a key, and those whose calls name such a
-- trace as their producer's.
INSERT INTO derive_queue
SELECT TraceId, FirstTs, LastTs FROM fill_8_ids SEMI JOIN fill_8_shared USING (OldKey)
UNION ALL
SELECT t.TraceId, t.FirstTs, t.LastTs FROM trace_index t
WHERE t.TraceNo IN (
    SELECT TraceNo FROM edge_calls
    WHERE SourceTraceKey IN (SELECT OldKey FROM fill_8_shared)
);
UPDATE trace_index SET TraceKey = fs_trace_key(TraceId);
-- The flows' roots by their MD5 key (fs_root_key) instead of hash(service, operation).
UPDATE span_steps SET RootKey = k.RootKey
FROM (
    SELECT TraceNo, fs_root_key(RootService, RootOperation) AS RootKey
    FROM trace_index WHERE RootService IS NOT NULL
) k
WHERE span_steps.TraceNo = k.TraceNo;
DROP TABLE fill_8_ids;
DROP TABLE fill_8_shared;
