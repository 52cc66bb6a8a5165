-- The root facts of one trace, for its flow id.
SELECT RootSpanId, RootService, RootOperation, RootRoute,
       [coalesce(RootAttributes[k], RootResource[k], '') for k in CAST($keys AS VARCHAR[])] AS Attrs,
       epoch_ns(FirstTs), epoch_ns(LastTs), epoch_ns(RootTs), RootDuration,
       epoch_ns(EndTs)
FROM a_trace_index WHERE TraceId = $trace_id
