-- The root facts of the selected trace (select_trace.sql), for its flow id.
SELECT RootSpanId, RootService, RootOperation, RootRoute,
       [coalesce(RootAttributes[k], RootResource[k], '') for k in CAST($keys AS VARCHAR[])] AS Attrs,
       epoch_ns(FirstTs), epoch_ns(LastTs)
FROM sel_traces
