-- Derivation, step 4: one row per cross-service call among the in-scope spans
-- (DESIGN.md §4). Rule 1 rpc: a child in another service than its parent; latency is
-- the parent's duration when it is a CLIENT span, else the child's. Rule 2 virtual: a
-- CLIENT span without a child in another service calls its named peer. Rule 3 async:
-- a PRODUCER and a CONSUMER in another service, by parent or by span link; such a
-- pair is never also rpc. The time of a call is the start of the span it measures.
CREATE OR REPLACE TEMP TABLE dv_edge_calls_named AS
WITH pairs AS (
    SELECT
        p.TraceId AS SourceTraceId, p.SpanId AS SourceSpanId, p.ServiceName AS Source,
        p.SpanKind AS SourceKind, p.Timestamp AS SourceTs, p.Duration AS SourceDuration,
        p.IsError AS SourceError, p.MsgSystem AS SourceMsg, p.Destination AS SourceDest,
        c.TraceId, c.SpanId, c.ServiceName AS Target, c.SpanKind AS TargetKind,
        c.Timestamp AS TargetTs, c.Duration AS TargetDuration, c.IsError AS TargetError,
        c.MsgSystem AS TargetMsg, c.Destination AS TargetDest,
        false AS ByLink
    FROM dv_spans c JOIN dv_spans p ON c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId
    WHERE c.InScope AND c.ServiceName <> p.ServiceName
),
linked AS (
    SELECT
        p.TraceId AS SourceTraceId, p.SpanId AS SourceSpanId, p.ServiceName AS Source,
        p.SpanKind AS SourceKind, p.Timestamp AS SourceTs, p.Duration AS SourceDuration,
        p.IsError AS SourceError, p.MsgSystem AS SourceMsg, p.Destination AS SourceDest,
        c.TraceId, c.SpanId, c.ServiceName AS Target, c.SpanKind AS TargetKind,
        c.Timestamp AS TargetTs, c.Duration AS TargetDuration, c.IsError AS TargetError,
        c.MsgSystem AS TargetMsg, c.Destination AS TargetDest,
        true AS ByLink
    FROM (SELECT *, unnest(LinkRefs) AS ref FROM dv_spans WHERE InScope AND LinkRefs IS NOT NULL) c
    JOIN dv_spans p ON p.TraceId = c.ref.TraceId AND p.SpanId = c.ref.SpanId
    WHERE p.SpanKind = 'Producer' AND c.ServiceName <> p.ServiceName
),
async AS (
    SELECT * FROM (
        SELECT * FROM pairs WHERE SourceKind = 'Producer' AND TargetKind = 'Consumer'
        UNION ALL
        SELECT * FROM linked
    )
    -- A consumer that is both the producer's child and linked to it is one call.
    QUALIFY row_number() OVER (
        PARTITION BY TraceId, SpanId, SourceTraceId, SourceSpanId ORDER BY ByLink
    ) = 1
)
SELECT
    CASE WHEN SourceKind = 'Client' THEN SourceTs ELSE TargetTs END AS Ts,
    TraceId, SourceTraceId, Source, Target, 'rpc' AS Rule, 'service' AS TargetKind,
    '' AS MessagingSystem, '' AS Destination,
    CASE WHEN SourceKind = 'Client' THEN SourceDuration ELSE TargetDuration END AS LatencyNs,
    CAST(NULL AS BIGINT) AS LagNs,
    SourceError OR TargetError AS IsError
FROM pairs
WHERE NOT (SourceKind = 'Producer' AND TargetKind = 'Consumer')
UNION ALL
SELECT
    p.Timestamp, p.TraceId, p.TraceId, p.ServiceName, p.Peer, 'virtual', p.PeerKind,
    '', '', p.Duration, CAST(NULL AS BIGINT), p.IsError
FROM dv_spans p
WHERE p.InScope AND p.SpanKind = 'Client'
  AND NOT EXISTS (
      SELECT 1 FROM dv_spans c
      WHERE c.TraceId = p.TraceId AND c.ParentSpanId = p.SpanId AND c.ServiceName <> p.ServiceName
  )
UNION ALL
SELECT
    TargetTs, TraceId, SourceTraceId, Source, Target, 'async', 'service',
    CASE WHEN SourceMsg <> '' THEN SourceMsg ELSE TargetMsg END,
    CASE WHEN SourceDest <> '' THEN SourceDest ELSE TargetDest END,
    TargetDuration,
    greatest(epoch_ns(TargetTs) - (epoch_ns(SourceTs) + SourceDuration), 0),
    SourceError OR TargetError
FROM async;

CREATE OR REPLACE TEMP TABLE dv_edge_keys AS
SELECT DISTINCT
    md5_number_lower(concat_ws(chr(31), Source, Target, Rule, TargetKind, MessagingSystem, Destination)) AS EdgeKey,
    Source, Target, Rule, TargetKind, MessagingSystem, Destination
FROM dv_edge_calls_named;

CREATE OR REPLACE TEMP TABLE dv_edge_calls AS
SELECT
    Ts, TraceId, SourceTraceId,
    md5_number_lower(concat_ws(chr(31), Source, Target, Rule, TargetKind, MessagingSystem, Destination)) AS EdgeKey,
    LatencyNs, LagNs, IsError
FROM dv_edge_calls_named;
