-- Without --by every selected trace is in the one group ''.
CREATE OR REPLACE TEMP TABLE sel_groups AS SELECT TraceId, '' AS GroupValue FROM sel_traces
