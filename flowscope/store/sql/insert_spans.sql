INSERT INTO otel_traces SELECT *, $seq AS CommitSeq FROM incoming_spans
