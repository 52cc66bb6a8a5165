-- What a trace view shows of each span of one trace beyond its tree (trace_spans.sql
-- has the tree): its resource, events and links. Apart, as comparisons load the tree
-- only: for a trace of 152k events these took 2 s of a 2.6 s comparison. Each span's
-- first $events_each events as sent: a view holds at most analyzer/trace_view.py's
-- MAX_EVENTS of a trace (152k events made a 33 MB answer).
SELECT
    SpanId, ServiceName, SpanKind, epoch_ns(Timestamp) AS Start, ResourceAttributes,
    -- nanoseconds as numbers: a Python datetime keeps microseconds
    [{'start': epoch_ns(e.Timestamp), 'name': e.Name, 'attributes': e.Attributes}
        for e in list_slice(Events, 1, $events_each)] AS Events,
    Links
FROM otel_traces
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi) AND TraceId = $trace_id
ORDER BY Timestamp, SpanId
