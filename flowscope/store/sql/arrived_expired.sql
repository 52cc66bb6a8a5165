-- Spans committed after commit $seq that had started before $cutoff: stored after the
-- retention sweep that used $cutoff, they were older than the retention on arrival.
SELECT count(*) FROM otel_traces WHERE CommitSeq > $seq AND Timestamp < $cutoff
