INSERT INTO otel_traces SELECT * FROM incoming_spans
