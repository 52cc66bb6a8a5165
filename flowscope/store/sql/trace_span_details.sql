-- What a trace view shows of each span of one trace beyond its tree (trace_spans.sql
-- has the tree): its attributes, resource, events and links. Apart, as comparisons
-- load the tree only: for a trace of 152k events these took 2 s of a 2.6 s comparison.
-- Each span's first $attributes_each attributes (stored sorted by key), first
-- $events_each events and first $links_each links as sent, and the first $nested_each
-- attributes of its resource and of each of those events and links: a view holds at
-- most analyzer/trace_view.py's MAX_* of a trace (152k events made a 33 MB answer; 3
-- spans of 900k attributes a 50.6 MB one, in 33.6 s). And spans in start order only
-- while what came before them costs less than $budget (text bytes, and 16 for each
-- attribute, event and link; a span's resource counts for each span, as the answer
-- repeats it): 8,000 spans sharing a resource of 1,000 attributes, one 526 KB
-- request, made a 100 MB answer in 48 s. The counts in trace_spans.sql say what is
-- left out.
WITH shown AS (
    SELECT
        SpanId, ServiceName, SpanKind, Timestamp,
        list_slice(map_entries(ResourceAttributes), 1, $nested_each) AS resource,
        cardinality(ResourceAttributes) AS resource_count,
        -- nanoseconds as numbers: a Python datetime keeps microseconds
        [{'start': epoch_ns(e.Timestamp), 'name': e.Name,
            'attributes': list_slice(map_entries(e.Attributes), 1, $nested_each),
            'attribute_count': cardinality(e.Attributes)}
            for e in list_slice(Events, 1, $events_each)] AS events,
        [{'trace_id': l.TraceId, 'span_id': l.SpanId, 'trace_state': l.TraceState,
            'attributes': list_slice(map_entries(l.Attributes), 1, $nested_each),
            'attribute_count': cardinality(l.Attributes)}
            for l in list_slice(Links, 1, $links_each)] AS links,
        list_slice(map_entries(SpanAttributes), 1, $attributes_each) AS attributes
    FROM otel_traces
    WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
        AND TraceId = $trace_id
),
costed AS (
    SELECT *,
        coalesce(list_sum([strlen(a.key) + strlen(a.value) + 16 for a in resource]), 0)
        + coalesce(list_sum([strlen(a.key) + strlen(a.value) + 16 for a in attributes]), 0)
        + coalesce(list_sum([strlen(e.name) + 16 + coalesce(list_sum(
            [strlen(a.key) + strlen(a.value) + 16 for a in e.attributes]), 0) for e in events]), 0)
        + coalesce(list_sum([strlen(l.trace_id) + strlen(l.span_id) + strlen(l.trace_state) + 16
            + coalesce(list_sum([strlen(a.key) + strlen(a.value) + 16 for a in l.attributes]), 0)
            for l in links]), 0) AS cost
    FROM shown
),
running AS (
    SELECT *, coalesce(sum(cost) OVER (ORDER BY Timestamp, SpanId
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS cost_before
    FROM costed
)
SELECT
    SpanId, ServiceName, SpanKind, epoch_ns(Timestamp) AS Start,
    map_from_entries(resource) AS ResourceAttributes,
    resource_count AS ResourceCount,
    [{'start': e.start, 'name': e.name, 'attributes': map_from_entries(e.attributes),
        'attribute_count': e.attribute_count} for e in events] AS Events,
    [{'trace_id': l.trace_id, 'span_id': l.span_id, 'trace_state': l.trace_state,
        'attributes': map_from_entries(l.attributes), 'attribute_count': l.attribute_count}
        for l in links] AS Links,
    map_from_entries(attributes) AS SpanAttributes
FROM running
WHERE cost_before < $budget
ORDER BY Timestamp, SpanId
