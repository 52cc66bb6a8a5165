-- The last commit's number: the writer goes on from it.
SELECT coalesce(max(CommitSeq), 0) FROM otel_traces
