-- One trace as the selection (sel_traces), by id; FlowId is filled in by the analyzer.
CREATE OR REPLACE TEMP TABLE sel_traces AS
SELECT *, '' AS FlowId FROM a_trace_index WHERE TraceId = $trace_id
