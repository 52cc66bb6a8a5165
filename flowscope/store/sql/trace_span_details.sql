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
-- left out. The running cost is summed over (row, cost) alone, and only the spans under
-- the budget have their details built: summed over the details themselves, 1,000
-- spans sharing a 2 MB value took the server to 9.7 GB.
WITH costs AS (
    SELECT
        rowid AS row_id, Timestamp, SpanId,
        coalesce(list_sum([strlen(a.key) + strlen(a.value) + 16
            for a in list_slice(map_entries(ResourceAttributes), 1, $nested_each)]), 0)
        + coalesce(list_sum([strlen(a.key) + strlen(a.value) + 16
            for a in list_slice(map_entries(SpanAttributes), 1, $attributes_each)]), 0)
        + coalesce(list_sum([strlen(e.Name) + 16 + coalesce(list_sum(
            [strlen(a.key) + strlen(a.value) + 16
                for a in list_slice(map_entries(e.Attributes), 1, $nested_each)]), 0)
            for e in list_slice(Events, 1, $events_each)]), 0)
        + coalesce(list_sum([strlen(l.TraceId) + strlen(l.SpanId) + strlen(l.TraceState) + 16
            + coalesce(list_sum([strlen(a.key) + strlen(a.value) + 16
                for a in list_slice(map_entries(l.Attributes), 1, $nested_each)]), 0)
            for l in list_slice(Links, 1, $links_each)]), 0) AS cost
    FROM otel_traces
    WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
        AND TraceId = $trace_id
),
shown AS (
    SELECT row_id, coalesce(sum(cost) OVER (ORDER BY Timestamp, SpanId
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) < $budget AS shown
    FROM costs
)
SELECT
    t.SpanId, t.ServiceName, t.SpanKind, epoch_ns(t.Timestamp) AS Start,
    -- NULL past the budget: the span's counts (trace_spans.sql) say what is left out
    CASE WHEN s.shown THEN map_from_entries(
        list_slice(map_entries(t.ResourceAttributes), 1, $nested_each)) END
        AS ResourceAttributes,
    cardinality(t.ResourceAttributes) AS ResourceCount,
    -- nanoseconds as numbers: a Python datetime keeps microseconds
    CASE WHEN s.shown THEN [{'start': epoch_ns(e.Timestamp), 'name': e.Name,
        'attributes': map_from_entries(list_slice(map_entries(e.Attributes), 1, $nested_each)),
        'attribute_count': cardinality(e.Attributes)}
        for e in list_slice(t.Events, 1, $events_each)] END AS Events,
    CASE WHEN s.shown THEN [{'trace_id': l.TraceId, 'span_id': l.SpanId,
        'trace_state': l.TraceState,
        'attributes': map_from_entries(list_slice(map_entries(l.Attributes), 1, $nested_each)),
        'attribute_count': cardinality(l.Attributes)}
        for l in list_slice(t.Links, 1, $links_each)] END AS Links,
    CASE WHEN s.shown THEN map_from_entries(
        list_slice(map_entries(t.SpanAttributes), 1, $attributes_each)) END AS SpanAttributes
FROM otel_traces AS t
JOIN shown AS s ON t.rowid = s.row_id
WHERE t.Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
    AND t.TraceId = $trace_id
ORDER BY t.Timestamp, t.SpanId
