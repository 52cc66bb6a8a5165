-- Derivation, last step on the writer thread: replace the derived rows of the traces
-- in scope and empty the queue, in one transaction with nothing else writing.
-- Their old rows lie within the traces' span range: pruned scans, not full ones.
DELETE FROM edge_calls
WHERE Ts BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
  AND TraceNo IN (SELECT TraceNo FROM dv_scope_nos);
-- Sorted by key within the pass: runs of one edge (one flow's step) compress to almost
-- nothing, where random 64-bit keys in arrival order are stored uncompressed
-- (docs/benchmarks.md, "Disk"): about 10 bytes a span less, and no read depends on the
-- order of rows inside a pass. Within an edge by time: the times, and the trace
-- numbers that follow them, then differ little from row to row (1.2 bytes a span less
-- at 10M spans).
INSERT INTO edge_calls SELECT * FROM dv_edge_calls ORDER BY EdgeKey, Ts;
INSERT INTO edge_minutes SELECT * FROM dv_edge_minutes;  -- merged in key order next
INSERT INTO edge_keys SELECT * FROM dv_edge_keys WHERE EdgeKey NOT IN (SELECT EdgeKey FROM edge_keys);
DELETE FROM trace_index
WHERE FirstTs BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
  AND TraceNo IN (SELECT TraceNo FROM dv_scope_nos);
INSERT INTO trace_index SELECT * FROM dv_trace_index;
DELETE FROM trace_links WHERE TraceId IN (SELECT TraceId FROM dv_scope);
INSERT INTO trace_links SELECT * FROM dv_trace_links;
DELETE FROM span_steps
WHERE RootTs BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
  AND TraceNo IN (SELECT TraceNo FROM dv_scope_nos);
-- Within a step, by root start: the times then differ little from row to row and
-- pack into fewer bits (about 2.6 bytes a span less, docs/benchmarks.md, disk).
INSERT INTO span_steps SELECT * FROM dv_span_steps ORDER BY RootKey, StepKey, RootTs;
INSERT INTO step_keys SELECT * FROM dv_step_keys WHERE StepKey NOT IN (SELECT StepKey FROM step_keys);
UPDATE step_keys SET Peer = d.Peer
FROM dv_step_keys d
WHERE step_keys.StepKey = d.StepKey AND d.Peer IS NOT NULL
  AND (step_keys.Peer IS NULL OR d.Peer < step_keys.Peer);
-- The traces this pass derived (all that were queued, but for triage's subsets).
DELETE FROM derive_queue WHERE TraceId IN (SELECT TraceId FROM dv_queue);
-- A row added and the older ones deleted, as derive_state's mark (sql/dv_intake.sql):
-- an update held open stops DuckDB's automatic checkpoints.
INSERT INTO trace_numbers
SELECT n FROM (SELECT max(TraceNo) AS n FROM dv_trace_index)
WHERE n > (SELECT max(HandedOut) FROM trace_numbers);
DELETE FROM trace_numbers WHERE HandedOut < (SELECT max(HandedOut) FROM trace_numbers);
