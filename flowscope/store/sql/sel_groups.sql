-- The --by value of each selected trace: the root span's attribute, else its resource's,
-- else that of the earliest span in the trace that has it (span over resource), else ''.
CREATE OR REPLACE TEMP TABLE sel_groups AS
WITH carriers AS (
    SELECT
        TraceId,
        first(coalesce(SpanAttributes[$by], ResourceAttributes[$by]) ORDER BY Timestamp, SpanId) AS Value
    FROM a_spans
    WHERE Timestamp BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi)
      AND TraceId IN (SELECT TraceId FROM sel_traces)
      AND coalesce(SpanAttributes[$by], ResourceAttributes[$by]) IS NOT NULL
    GROUP BY TraceId
)
SELECT s.TraceId, coalesce(t.RootAttributes[$by], t.RootResource[$by], c.Value, '') AS GroupValue
FROM sel_traces s
JOIN a_trace_index t USING (TraceNo)
LEFT JOIN carriers c ON c.TraceId = s.TraceId
