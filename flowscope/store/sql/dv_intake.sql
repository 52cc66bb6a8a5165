-- Derivation, step 0 (derive thread, in its transaction): take in the spans committed
-- since the last pass (sql/003_analysis.sql, untaken_*): queue their traces, add their
-- per-minute counts and SERVER/CONSUMER durations, and move the mark. Commits write
-- nothing but spans; readers add the same rows through the a_* views meanwhile.
INSERT INTO derive_queue
SELECT TraceId, min(Timestamp), max(Timestamp) FROM untaken_spans GROUP BY TraceId;
INSERT INTO service_minutes SELECT * FROM untaken_service_minutes;
INSERT INTO server_spans SELECT * FROM untaken_server_spans;
-- The mark moves by a row added and the older ones deleted, not by an UPDATE: DuckDB
-- skips its automatic checkpoints while any open transaction holds an update, and a
-- pass holds its transaction for as long as it runs. Under a flood of large spans the
-- passes ran back to back, no checkpoint came for minutes, and the WAL grew to 2 GB
-- (13 GB in a review's flood). Readers take max(DerivedSeq).
INSERT INTO derive_state
SELECT Seq FROM (SELECT max(CommitSeq) AS Seq FROM untaken_spans) WHERE Seq IS NOT NULL;
DELETE FROM derive_state WHERE DerivedSeq < (SELECT max(DerivedSeq) FROM derive_state);
