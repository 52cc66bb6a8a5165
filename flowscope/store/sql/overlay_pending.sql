-- Some traces wait for derivation: analysis reads their rows as derived just now
-- (dv_*), and the stored rows of every other trace, so answers never lag the spans.
CREATE OR REPLACE TEMP VIEW a_trace_index AS
SELECT * FROM trace_index ANTI JOIN dv_scope USING (TraceId)
UNION ALL
SELECT * FROM dv_trace_index;
CREATE OR REPLACE TEMP VIEW a_edge_calls AS
SELECT * FROM edge_calls ANTI JOIN dv_scope USING (TraceId)
UNION ALL
SELECT * FROM dv_edge_calls;
CREATE OR REPLACE TEMP VIEW a_edge_keys AS
SELECT * FROM edge_keys
UNION ALL
SELECT * FROM dv_edge_keys ANTI JOIN edge_keys USING (EdgeKey);
CREATE OR REPLACE TEMP VIEW a_span_steps AS
SELECT * FROM span_steps ANTI JOIN (SELECT hash(TraceId) AS TraceKey FROM dv_scope) USING (TraceKey)
UNION ALL
SELECT * FROM dv_span_steps;
CREATE OR REPLACE TEMP VIEW a_step_keys AS
SELECT * FROM step_keys
UNION ALL
SELECT * FROM dv_step_keys ANTI JOIN step_keys USING (StepKey);
