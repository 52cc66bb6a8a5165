-- Some traces wait for derivation: analysis reads their rows as derived just now
-- (dv_*), and the stored rows of every other trace, so answers never lag the spans.
-- Stored rows are set aside by the number of their trace (found by the 64-bit hash of
-- its id and confirmed by the id: sql/dv_plan_load.sql).
CREATE OR REPLACE TEMP VIEW a_trace_index AS
SELECT * FROM trace_index ANTI JOIN dv_scope_nos USING (TraceNo)
UNION ALL
SELECT * FROM dv_trace_index;
CREATE OR REPLACE TEMP VIEW a_edge_calls AS
SELECT * FROM edge_calls ANTI JOIN dv_scope_nos USING (TraceNo)
UNION ALL
SELECT * FROM dv_edge_calls;
CREATE OR REPLACE TEMP VIEW a_edge_minutes AS
SELECT * FROM edge_minutes UNION ALL SELECT * FROM dv_edge_minutes;
CREATE OR REPLACE TEMP VIEW a_edge_keys AS
SELECT * FROM edge_keys
UNION ALL
SELECT * FROM dv_edge_keys ANTI JOIN edge_keys USING (EdgeKey);
CREATE OR REPLACE TEMP VIEW a_span_steps AS
SELECT * FROM span_steps ANTI JOIN dv_scope_nos USING (TraceNo)
UNION ALL
SELECT * FROM dv_span_steps;
CREATE OR REPLACE TEMP VIEW a_step_keys AS
SELECT
    k.StepKey, k.ParentStepKey, k.ServiceName, k.SpanName, k.SpanKind,
    least(coalesce(k.Peer, d.Peer), coalesce(d.Peer, k.Peer)) AS Peer
FROM step_keys k LEFT JOIN dv_step_keys d USING (StepKey)
UNION ALL
SELECT * FROM dv_step_keys ANTI JOIN step_keys USING (StepKey);
-- Spans not taken in yet count as sql/dv_intake.sql will count them.
CREATE OR REPLACE TEMP VIEW a_service_minutes AS
SELECT * FROM service_minutes UNION ALL SELECT * FROM untaken_service_minutes;
CREATE OR REPLACE TEMP VIEW a_server_spans AS
SELECT * FROM server_spans UNION ALL SELECT * FROM untaken_server_spans;
-- Every span: those not taken in yet are in the rows derived just now.
CREATE OR REPLACE TEMP VIEW a_spans AS SELECT * FROM otel_traces;
CREATE OR REPLACE TEMP VIEW a_span_service_facts AS SELECT * FROM span_service_facts;
