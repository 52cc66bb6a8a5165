DELETE FROM otel_traces WHERE Timestamp < $cutoff
