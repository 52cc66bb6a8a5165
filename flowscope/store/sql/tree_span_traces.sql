-- Per TraceIdx of tree_span_columns (same numbering): the trace id and its hash.
SELECT row_number() OVER (ORDER BY TraceKey) - 1 AS TraceIdx, TraceId, TraceKey
FROM (SELECT TraceKey, any_value(TraceId) AS TraceId FROM tree_spans GROUP BY TraceKey)
ORDER BY TraceIdx
