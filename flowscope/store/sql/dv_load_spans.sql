-- Derivation, step 3: the spans of one cluster of traces with what the derivation
-- reads (analyzer/derived_rows.py). 64-bit hashes stand in for the ids; attributes are
-- looked up only where a rule reads them (CASE evaluates its branch for matching rows
-- only). Virtual peer name of a CLIENT span: peer.service, service.peer.name,
-- db.system (+ namespace), messaging.system + destination, server.address (DESIGN.md
-- §4 rule 2), then the older net.peer.name; 'unknown' when it names no peer at all.
SELECT
    hash(TraceId) AS TraceKey,
    hash(TraceId, SpanId) AS SpanKey,
    CASE WHEN ParentSpanId = '' THEN CAST(0 AS UBIGINT) ELSE hash(TraceId, ParentSpanId) END AS ParentKey,
    epoch_ns(Timestamp) AS Start,
    Duration,
    ServiceName,
    SpanName,
    SpanKind,
    StatusCode = 'Error' AS IsError,
    CASE WHEN SpanKind = 'Client' THEN coalesce(
        nullif(coalesce(SpanAttributes['peer.service'], ''), ''),
        nullif(coalesce(SpanAttributes['service.peer.name'], ''), ''),
        nullif(coalesce(SpanAttributes['db.system.name'], SpanAttributes['db.system'], ''), '')
            || coalesce('/' || nullif(coalesce(SpanAttributes['db.namespace'], SpanAttributes['db.name'], ''), ''), ''),
        nullif(coalesce(SpanAttributes['messaging.system'], ''), '')
            || coalesce('/' || nullif(coalesce(SpanAttributes['messaging.destination.name'], SpanAttributes['messaging.destination'], ''), ''), ''),
        nullif(coalesce(SpanAttributes['server.address'], ''), ''),
        nullif(coalesce(SpanAttributes['net.peer.name'], ''), ''),
        'unknown'
    ) END AS Peer,
    CASE WHEN SpanKind = 'Client' THEN
        CASE WHEN coalesce(SpanAttributes['db.system.name'], SpanAttributes['db.system'], '') <> '' THEN 'database'
             WHEN coalesce(SpanAttributes['messaging.system'], '') <> '' THEN 'messaging'
             ELSE 'external' END
    END AS PeerKind,
    CASE WHEN SpanKind IN ('Producer', 'Consumer')
        THEN coalesce(SpanAttributes['messaging.system'], '') END AS MsgSystem,
    CASE WHEN SpanKind IN ('Producer', 'Consumer')
        THEN coalesce(SpanAttributes['messaging.destination.name'], SpanAttributes['messaging.destination'], '') END AS Destination,
    CASE WHEN SpanKind = 'Consumer' AND len(Links) > 0
        THEN [hash(l.TraceId, l.SpanId) for l in Links] END AS LinkKeys,
    CASE WHEN SpanKind = 'Consumer' AND len(Links) > 0
        THEN [l.TraceId for l in Links if l.TraceId <> TraceId] END AS LinkTraceIds,
    len(Links) > 0 AND len([l for l in Links
        if l.SpanId = ParentSpanId
        AND coalesce(l.Attributes['opentracing.ref_type'], '') = 'follows_from']) > 0 AS FollowsFrom,
    CASE WHEN ParentSpanId = '' THEN SpanId END AS RootSpanId,
    CASE WHEN ParentSpanId = '' THEN StatusCode END AS RootStatus,
    CASE WHEN ParentSpanId = '' THEN SpanAttributes END AS RootAttributes,
    CASE WHEN ParentSpanId = '' THEN ResourceAttributes END AS RootResource,
    CASE WHEN ParentSpanId = '' THEN coalesce(
        nullif(coalesce(SpanAttributes['http.route'], ''), ''),
        nullif(coalesce(SpanAttributes['url.path'], ''), ''),
        nullif(coalesce(SpanAttributes['http.target'], ''), ''),
        SpanName) END AS Route,
    $in_scope AS InScope
FROM otel_traces
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
  AND TraceId IN (SELECT TraceId FROM dv_load WHERE Cluster = $cluster)
