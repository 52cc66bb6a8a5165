-- For the CLI's hint under an empty trace list with span filters (service, operation,
-- attributes), through the SQL sandbox like hint_window_presence.sql: the window, the
-- service, the operation and the attributes' keys and values are written in as
-- literals (sql_files.filled: no placeholder is named in these comments). Whether any
-- span in the window matches, and the services with spans in the window (a misspelt
-- --service matches none).
SELECT
    EXISTS (
        SELECT 1 FROM otel_traces
        WHERE Timestamp >= make_timestamp_ns($since) AND Timestamp < make_timestamp_ns($until)
          AND ($service IS NULL OR ServiceName = $service)
          AND ($operation IS NULL OR SpanName = $operation)
          AND len([i FOR i IN range(1, len($keys) + 1)
              IF coalesce(SpanAttributes[$keys[i]], ResourceAttributes[$keys[i]])
                  IS DISTINCT FROM $values[i]]) = 0
    ),
    (SELECT list(DISTINCT ServiceName) FROM otel_traces
     WHERE Timestamp >= make_timestamp_ns($since) AND Timestamp < make_timestamp_ns($until))
