-- One trace's spans with every field OTLP has, for `flowscope trace ID --format otlp`
-- (flowscope/trace_export.py), through the SQL sandbox so that a server's /api/sql
-- answers it too: $trace_id is written in as a literal. Times as integer nanoseconds:
-- the answer's text for a TIMESTAMP_NS would have to be parsed back.
SELECT
    ResourceAttributes, ScopeName, ScopeVersion,
    TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,
    epoch_ns(Timestamp) AS StartNs, Duration, StatusCode, StatusMessage, SpanAttributes,
    [{'time': epoch_ns(e.Timestamp), 'name': e.Name, 'attributes': e.Attributes} FOR e IN Events]
        AS Events,
    Links
FROM otel_traces
WHERE TraceId = $trace_id
ORDER BY Timestamp, SpanId
