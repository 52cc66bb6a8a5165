-- Span and parent ids of sel_spans by row (trace views need them).
SELECT rowid - (SELECT min(rowid) FROM sel_spans) AS Row, SpanId, ParentSpanId FROM sel_spans ORDER BY Row
