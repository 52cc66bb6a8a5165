-- The (service, operation, kind) of each OpIdx of tree_span_columns (same numbering).
SELECT row_number() OVER (ORDER BY OpKey) - 1 AS OpIdx, ServiceName, SpanName, SpanKind
FROM (SELECT OpKey, any_value(ServiceName) AS ServiceName,
             any_value(SpanName) AS SpanName, any_value(SpanKind) AS SpanKind
      FROM tree_spans GROUP BY OpKey)
ORDER BY OpIdx
