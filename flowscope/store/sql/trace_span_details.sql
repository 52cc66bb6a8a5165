-- What a trace view shows of each span of one trace beyond its tree (trace_spans.sql
-- has the tree): its attributes, resource, events and links. Apart, as comparisons
-- load the tree only: for a trace of 152k events these took 2 s of a 2.6 s comparison.
-- Each span's first $attributes_each attributes (stored sorted by key), first
-- $events_each events and first $links_each links as sent, and the first $nested_each
-- attributes of its resource and of each of those events and links: a view holds at
-- most analyzer/trace_view.py's MAX_* of a trace (152k events made a 33 MB answer; 3
-- spans of 900k attributes a 50.6 MB one, in 33.6 s). The counts say what is left out.
SELECT
    SpanId, ServiceName, SpanKind, epoch_ns(Timestamp) AS Start,
    map_from_entries(list_slice(map_entries(ResourceAttributes), 1, $nested_each))
        AS ResourceAttributes,
    cardinality(ResourceAttributes) AS ResourceCount,
    -- nanoseconds as numbers: a Python datetime keeps microseconds
    [{'start': epoch_ns(e.Timestamp), 'name': e.Name,
        'attributes': map_from_entries(list_slice(map_entries(e.Attributes), 1, $nested_each)),
        'attribute_count': cardinality(e.Attributes)}
        for e in list_slice(Events, 1, $events_each)] AS Events,
    [{'trace_id': l.TraceId, 'span_id': l.SpanId, 'trace_state': l.TraceState,
        'attributes': map_from_entries(list_slice(map_entries(l.Attributes), 1, $nested_each)),
        'attribute_count': cardinality(l.Attributes)}
        for l in list_slice(Links, 1, $links_each)] AS Links,
    map_from_entries(list_slice(map_entries(SpanAttributes), 1, $attributes_each))
        AS SpanAttributes
FROM otel_traces
WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi) AND TraceId = $trace_id
ORDER BY Timestamp, SpanId
