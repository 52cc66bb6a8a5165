-- Derivation, step 2: where the spans of the traces in dv_want lie in time, grouped
-- into clusters of nearby traces so each cluster is one zone-map-pruned range scan.
CREATE OR REPLACE TEMP TABLE dv_load AS
WITH ranges AS (
    SELECT TraceId, FirstTs, LastTs FROM dv_queue SEMI JOIN dv_want USING (TraceId)
    UNION ALL
    -- By the id's hash first: an integer probe, not a string join over every trace.
    SELECT t.TraceId, t.FirstTs, t.LastTs
    FROM trace_index t
    SEMI JOIN (SELECT hash(TraceId) AS TraceKey, TraceId FROM dv_want) w
        ON t.TraceKey = w.TraceKey AND t.TraceId = w.TraceId
),
traces AS (
    SELECT TraceId, min(FirstTs) AS FirstTs, max(LastTs) AS LastTs FROM ranges GROUP BY TraceId
),
ordered AS (
    SELECT *, max(LastTs) OVER (
        ORDER BY FirstTs, TraceId ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS PreviousEnd
    FROM traces
)
SELECT
    TraceId,
    FirstTs,
    LastTs,
    sum(CASE WHEN PreviousEnd IS NULL OR FirstTs > PreviousEnd + INTERVAL 10 SECOND THEN 1 ELSE 0 END)
        OVER (ORDER BY FirstTs, TraceId) AS Cluster
FROM ordered;
