-- Retention for the derived tables, run right after delete_older_than: rows of calls
-- and traces wholly older than the cutoff go; traces that straddle it are queued to be
-- derived again from the spans that remain; the cutoff's minute is counted again
-- (per service from the spans, per edge from the calls).
INSERT INTO derive_queue
SELECT TraceId, $cutoff, LastTs FROM trace_index WHERE FirstTs < $cutoff AND LastTs >= $cutoff;
-- Consumers linked to a producer trace that goes whole: their async calls came from it,
-- so they are derived again without them (before trace_index forgets the producer).
INSERT INTO derive_queue
SELECT c.TraceId, c.FirstTs, c.LastTs
FROM trace_links l
JOIN trace_index p ON p.TraceId = l.LinkedTraceId AND p.LastTs < $cutoff
JOIN trace_index c ON c.TraceId = l.TraceId AND c.LastTs >= $cutoff;
DELETE FROM edge_calls WHERE Ts < $cutoff;
DELETE FROM edge_minutes WHERE Minute <= date_trunc('minute', $cutoff);
INSERT INTO edge_minutes
SELECT
    (date_trunc('minute', Ts) - CASE WHEN CAST(date_trunc('minute', Ts) AS TIMESTAMP_NS) > Ts THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AS Minute,
    EdgeKey,
    Bucket,
    count(*) AS Calls,
    count(*) FILTER (WHERE IsError) AS Errors
FROM edge_calls
WHERE Ts >= date_trunc('minute', $cutoff) AND Ts < date_trunc('minute', $cutoff) + INTERVAL 1 MINUTE
GROUP BY ALL;
DELETE FROM span_steps WHERE TraceNo IN (
    SELECT TraceNo FROM trace_index WHERE FirstTs < $cutoff
);
DELETE FROM trace_index WHERE LastTs < $cutoff;
DELETE FROM trace_links WHERE TraceId NOT IN (SELECT TraceId FROM trace_index);
DELETE FROM server_spans WHERE Timestamp < $cutoff;
DELETE FROM service_minutes WHERE Minute <= date_trunc('minute', $cutoff);
INSERT INTO service_minutes
SELECT
    (date_trunc('minute', Timestamp) - CASE WHEN CAST(date_trunc('minute', Timestamp) AS TIMESTAMP_NS) > Timestamp THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AS Minute,
    ServiceName,
    Bucket,
    count(*) AS Spans,
    count(*) FILTER (WHERE IsError) AS Errors
FROM span_service_facts
WHERE Timestamp >= date_trunc('minute', $cutoff) AND Timestamp < date_trunc('minute', $cutoff) + INTERVAL 1 MINUTE
  AND CommitSeq <= (SELECT max(DerivedSeq) FROM derive_state)  -- the rest: dv_intake.sql
GROUP BY ALL;
