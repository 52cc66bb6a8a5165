-- The numeric columns of sel_spans, row = rowid - first rowid (temp tables start high). Parents, traces and operations are
-- matched on 64-bit hashes (integer joins, no sorting of strings): ParentRow is -1
-- when the parent is not stored; a duplicated span id resolves to its first row.
WITH base AS (SELECT min(rowid) AS First FROM sel_spans),
by_key AS (
    SELECT SpanKey, min(rowid) - (SELECT First FROM base) AS Row, any_value(SpanKind) AS SpanKind FROM sel_spans GROUP BY SpanKey
),
ops AS (
    SELECT OpKey, row_number() OVER (ORDER BY OpKey) - 1 AS OpIdx
    FROM (SELECT DISTINCT OpKey FROM sel_spans)
),
traces AS (
    SELECT TraceKey, row_number() OVER (ORDER BY TraceKey) - 1 AS TraceIdx
    FROM (SELECT DISTINCT TraceKey FROM sel_spans)
)
SELECT
    c.rowid - (SELECT First FROM base) AS Row,
    t.TraceIdx,
    coalesce(p.Row, -1) AS ParentRow,
    o.OpIdx,
    c.Start,
    c.Duration,
    c.IsError,
    (c.SpanKind = 'Consumer' AND coalesce(p.SpanKind, '') = 'Producer') OR c.FollowsFrom AS IsAsync,
    c.IsTraceRoot
FROM sel_spans c
LEFT JOIN by_key p ON p.SpanKey = c.ParentKey
JOIN ops o ON o.OpKey = c.OpKey
JOIN traces t ON t.TraceKey = c.TraceKey
