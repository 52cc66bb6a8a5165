-- The ids of the traces dv_load plans to load, by the key the spans carry.
SELECT fs_trace_key(TraceId) AS TraceKey, TraceId FROM dv_load
