-- One trace's spans with every stored field, for `flowscope trace ID --format otlp`
-- (flowscope/trace_export.py), through the SQL sandbox so that a server's /api/sql
-- answers it too: the trace id, the page's size and offset are written in as literals, and the
-- export reads page after page (a server caps an answer's rows and either caps its
-- size). Times as integer nanoseconds: the answer's text for a TIMESTAMP_NS would
-- have to be parsed back. The order is total, so pages neither skip nor repeat a span.
SELECT
    ResourceAttributes, ResourceDroppedAttributesCount, ResourceSchemaUrl, ResourceEntityRefs,
    ScopeName, ScopeVersion, ScopeAttributes, ScopeDroppedAttributesCount, ScopeSchemaUrl,
    TraceId, SpanId, ParentSpanId, TraceState, Flags, SpanName, SpanKind,
    epoch_ns(Timestamp) AS StartNs, Duration, StatusCode, StatusMessage,
    SpanAttributes, DroppedAttributesCount, DroppedEventsCount, DroppedLinksCount,
    [{'time': epoch_ns(e.Timestamp), 'name': e.Name, 'attributes': e.Attributes} FOR e IN Events]
        AS Events,
    EventsDroppedAttributesCount, Links, LinksDroppedAttributesCount, LinksFlags
FROM otel_traces
WHERE TraceId = $trace_id
ORDER BY Timestamp, SpanId, SpanKind, ServiceName, ParentSpanId, Duration, SpanName, CommitSeq
LIMIT $limit OFFSET $offset
