-- Derivation, step 5: one trace_index row per in-scope trace, and its cross-trace links.
CREATE OR REPLACE TEMP TABLE dv_trace_index AS
WITH spans AS (SELECT * FROM dv_spans WHERE InScope),
totals AS (
    SELECT
        TraceId,
        min(Timestamp) AS FirstTs,
        max(Timestamp) AS LastTs,
        make_timestamp_ns(max(epoch_ns(Timestamp) + Duration)) AS EndTs,
        count(*) AS Spans,
        count(*) FILTER (WHERE IsError) AS ErrorSpans,
        count(DISTINCT ServiceName) AS Services
    FROM spans
    GROUP BY TraceId
),
roots AS (
    SELECT * FROM spans WHERE ParentSpanId = ''
    QUALIFY row_number() OVER (PARTITION BY TraceId ORDER BY Timestamp, SpanId) = 1
)
SELECT
    t.TraceId, t.FirstTs, t.LastTs, t.EndTs, t.Spans, t.ErrorSpans, t.Services,
    coalesce(r.SpanId, '') AS RootSpanId,
    r.Timestamp AS RootTs,
    r.ServiceName AS RootService,
    r.SpanName AS RootOperation,
    r.SpanKind AS RootKind,
    r.Duration AS RootDuration,
    r.StatusCode AS RootStatus,
    r.Route AS RootRoute,
    r.RootAttributes,
    r.RootResource
FROM totals t LEFT JOIN roots r USING (TraceId);

CREATE OR REPLACE TEMP TABLE dv_trace_links AS
SELECT DISTINCT TraceId, ref.TraceId AS LinkedTraceId
FROM (SELECT TraceId, unnest(LinkRefs) AS ref FROM dv_spans WHERE InScope AND LinkRefs IS NOT NULL)
WHERE ref.TraceId <> TraceId;
