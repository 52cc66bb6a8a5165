-- Derivation, step 3: the spans of one cluster of traces, with what the edge rules need.
-- Virtual peer name: peer.service, service.peer.name, db.system (+ namespace),
-- messaging.system + destination, server.address (DESIGN.md §4 rule 2), then the
-- older net.peer.name; 'unknown' when a CLIENT span names no peer at all.
INSERT INTO dv_spans
WITH s AS (
    SELECT
        *,
        nullif(coalesce(SpanAttributes['db.system.name'], SpanAttributes['db.system'], ''), '') AS DbSystem,
        nullif(coalesce(SpanAttributes['db.namespace'], SpanAttributes['db.name'], ''), '') AS DbNamespace,
        nullif(coalesce(SpanAttributes['messaging.system'], ''), '') AS Messaging,
        nullif(coalesce(SpanAttributes['messaging.destination.name'], SpanAttributes['messaging.destination'], ''), '') AS MsgDestination
    FROM otel_traces
    WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
      AND TraceId IN (SELECT TraceId FROM dv_load WHERE Cluster = $cluster)
)
SELECT
    TraceId,
    SpanId,
    ParentSpanId,
    Timestamp,
    Duration,
    ServiceName,
    SpanName,
    SpanKind,
    StatusCode,
    StatusCode = 'Error' AS IsError,
    coalesce(
        nullif(coalesce(SpanAttributes['peer.service'], ''), ''),
        nullif(coalesce(SpanAttributes['service.peer.name'], ''), ''),
        DbSystem || coalesce('/' || DbNamespace, ''),
        Messaging || coalesce('/' || MsgDestination, ''),
        nullif(coalesce(SpanAttributes['server.address'], ''), ''),
        nullif(coalesce(SpanAttributes['net.peer.name'], ''), ''),
        'unknown'
    ) AS Peer,
    CASE WHEN DbSystem IS NOT NULL THEN 'database'
         WHEN Messaging IS NOT NULL THEN 'messaging'
         ELSE 'external' END AS PeerKind,
    coalesce(Messaging, '') AS MsgSystem,
    coalesce(MsgDestination, '') AS Destination,
    CASE WHEN SpanKind = 'Consumer' AND len(Links) > 0
        THEN [{'TraceId': l.TraceId, 'SpanId': l.SpanId} for l in Links] END AS LinkRefs,
    CASE WHEN ParentSpanId = '' THEN coalesce(
        nullif(coalesce(SpanAttributes['http.route'], ''), ''),
        nullif(coalesce(SpanAttributes['url.path'], ''), ''),
        nullif(coalesce(SpanAttributes['http.target'], ''), ''),
        SpanName) END AS Route,
    CASE WHEN ParentSpanId = '' THEN SpanAttributes END AS RootAttributes,
    CASE WHEN ParentSpanId = '' THEN ResourceAttributes END AS RootResource,
    $in_scope AS InScope
FROM s;
