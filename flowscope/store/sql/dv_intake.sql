-- Derivation, step 0 (derive thread, in its transaction): take in the spans committed
-- since the last pass (sql/003_analysis.sql, untaken_*): queue their traces, add their
-- per-minute counts and SERVER/CONSUMER durations, and move the mark. Commits write
-- nothing but spans; readers add the same rows through the a_* views meanwhile.
INSERT INTO derive_queue
SELECT TraceId, min(Timestamp), max(Timestamp) FROM untaken_spans GROUP BY TraceId;
INSERT INTO service_minutes SELECT * FROM untaken_service_minutes;
INSERT INTO server_spans SELECT * FROM untaken_server_spans;
UPDATE derive_state
SET DerivedSeq = coalesce((SELECT max(CommitSeq) FROM untaken_spans), DerivedSeq);
