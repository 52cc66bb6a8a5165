-- Keep the selected traces that ran through resource service.version = $version (in
-- service $service; '' for any service).
DELETE FROM sel_traces WHERE TraceId NOT IN (
    SELECT TraceId FROM a_spans
    WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
      AND coalesce(ResourceAttributes['service.version'], '') = $version
      AND ($service = '' OR ServiceName = $service)
)
