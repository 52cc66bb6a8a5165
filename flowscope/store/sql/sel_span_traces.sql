-- Per TraceIdx of sel_span_columns (same numbering): id, root start, --by group value.
SELECT s.TraceIdx, t.TraceId, epoch_ns(t.RootTs) AS RootStart, coalesce(g.GroupValue, '') AS GroupValue
FROM (SELECT TraceKey, row_number() OVER (ORDER BY TraceKey) - 1 AS TraceIdx
      FROM (SELECT DISTINCT TraceKey FROM sel_spans)) s
JOIN sel_traces t ON hash(t.TraceId) = s.TraceKey
LEFT JOIN sel_groups g ON g.TraceId = t.TraceId
ORDER BY s.TraceIdx
