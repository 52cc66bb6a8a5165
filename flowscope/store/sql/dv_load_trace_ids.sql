-- The ids of the traces dv_load plans to load, by the hash the spans carry.
SELECT hash(TraceId) AS TraceKey, TraceId FROM dv_load
