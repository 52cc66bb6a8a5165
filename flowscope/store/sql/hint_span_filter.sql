-- For the CLI's hint under an empty trace list with span filters (service, operation,
-- attributes), through the SQL sandbox like hint_window_presence.sql: the window, the
-- service, the operation and the attributes' keys and values are written in as
-- literals (sql_files.filled: no placeholder is named in these comments). How many traces
-- have such a span in the window, how many of those have no root span (the list goes
-- by roots: such a trace is not in it), the first of those ids, and the services with
-- spans in the window (a misspelt --service matches none).
WITH matched AS (
    SELECT DISTINCT TraceId FROM otel_traces
    WHERE Timestamp >= make_timestamp_ns($since) AND Timestamp < make_timestamp_ns($until)
      AND ($service IS NULL OR ServiceName = $service)
      AND ($operation IS NULL OR SpanName = $operation)
      AND len([i FOR i IN range(1, len($keys) + 1)
          IF coalesce(SpanAttributes[$keys[i]], ResourceAttributes[$keys[i]])
              IS DISTINCT FROM $values[i]]) = 0
),
rootless AS (
    SELECT TraceId FROM matched
    WHERE TraceId NOT IN (SELECT TraceId FROM otel_traces WHERE ParentSpanId = '')
)
SELECT
    (SELECT count(*) FROM matched),
    (SELECT count(*) FROM rootless),
    (SELECT list(TraceId ORDER BY TraceId)[1:3] FROM rootless),
    (SELECT list(DISTINCT ServiceName) FROM otel_traces
     WHERE Timestamp >= make_timestamp_ns($since) AND Timestamp < make_timestamp_ns($until))
