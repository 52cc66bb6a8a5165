SELECT count(*) FROM otel_traces
