-- For the CLI's hint under an empty trace list filtered by Jaeger's status tags
-- (error, otel.status_code: imports make the span's status of them, not attributes),
-- through the SQL sandbox like hint_span_filter.sql, literals written in
-- (sql_files.filled). Whether any span in the window holds one of the keys as an
-- attribute: only then would "no span holds it" be false.
SELECT EXISTS (
    SELECT 1 FROM otel_traces
    WHERE Timestamp >= make_timestamp_ns($since) AND Timestamp < make_timestamp_ns($until)
      AND list_has_any(map_keys(SpanAttributes) || map_keys(ResourceAttributes), $status_keys)
)
