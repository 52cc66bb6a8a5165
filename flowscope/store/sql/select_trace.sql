-- One trace as the selection (sel_traces): found by its integer key (an integer scan,
-- confirmed by the id); FlowId is filled in by the analyzer.
CREATE OR REPLACE TEMP TABLE sel_traces AS
SELECT *, '' AS FlowId FROM a_trace_index
WHERE TraceKey = $trace_key AND TraceId = $trace_id
