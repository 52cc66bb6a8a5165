-- Whether commit number $seq is in the table: a commit DuckDB reported as failed may
-- have gone through (the statement failed after it, in a checkpoint or clean-up), and
-- retrying it would store its spans twice.
SELECT count(*) > 0 FROM otel_traces WHERE CommitSeq = $seq
