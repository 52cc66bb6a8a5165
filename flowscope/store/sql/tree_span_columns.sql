-- The numeric columns of tree_spans for the vectorized tree; row = rowid - first rowid
-- (a fresh temp table's rowids are contiguous but start high; a row_number() would
-- serialize the scan). Parents, traces and operations are matched on their 64-bit
-- hash keys (integer joins, no sorting of strings); ParentRow is -1 when the parent
-- is not stored; a duplicated span id resolves to its first row.
WITH base AS (SELECT min(rowid) AS First FROM tree_spans),
keyed AS (
    SELECT
        rowid - (SELECT First FROM base) AS Row,
        TraceKey, SpanKey, ParentKey, OpKey, SpanKind, Start, Duration, IsError, FollowsFrom, IsTraceRoot
    FROM tree_spans
),
by_key AS (
    SELECT SpanKey, min(Row) AS Row, any_value(SpanKind) AS SpanKind FROM keyed GROUP BY SpanKey
),
ops AS (
    SELECT OpKey, row_number() OVER (ORDER BY OpKey) - 1 AS OpIdx
    FROM (SELECT DISTINCT OpKey FROM keyed)
),
traces AS (
    SELECT TraceKey, row_number() OVER (ORDER BY TraceKey) - 1 AS TraceIdx
    FROM (SELECT DISTINCT TraceKey FROM keyed)
)
SELECT
    c.Row,
    t.TraceIdx,
    coalesce(p.Row, -1) AS ParentRow,
    o.OpIdx,
    c.Start,
    c.Duration,
    c.IsError,
    (c.SpanKind = 'Consumer' AND coalesce(p.SpanKind, '') = 'Producer') OR c.FollowsFrom AS IsAsync,
    c.IsTraceRoot
FROM keyed c
LEFT JOIN by_key p ON p.SpanKey = c.ParentKey
JOIN ops o ON o.OpKey = c.OpKey
JOIN traces t ON t.TraceKey = c.TraceKey
