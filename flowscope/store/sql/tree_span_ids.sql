-- Span and parent ids of tree_spans by row (trace views need them).
SELECT rowid - (SELECT min(rowid) FROM tree_spans) AS Row, SpanId, ParentSpanId
FROM tree_spans ORDER BY Row
