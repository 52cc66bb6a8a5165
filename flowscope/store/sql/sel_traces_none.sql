-- No flow filter: an empty selection of the shape select_traces.sql makes.
CREATE OR REPLACE TEMP TABLE sel_traces AS
SELECT TraceId, TraceKey, TraceNo, FirstTs, LastTs, RootTs, RootSpanId, RootDuration, RootStatus, ErrorSpans,
       '' AS FlowId
FROM trace_index LIMIT 0
