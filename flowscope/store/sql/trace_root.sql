-- One trace's root facts (for its flow id) and the bounds of its span starts, found
-- by the integer key trace_index keeps for it (the hash folds to a constant, so the
-- scan is pruned by it) and confirmed by the id.
SELECT RootSpanId, RootService, RootOperation, RootRoute,
       [coalesce(RootAttributes[k], RootResource[k], '') for k in CAST($keys AS VARCHAR[])] AS Attrs,
       epoch_ns(FirstTs), epoch_ns(LastTs)
FROM a_trace_index
WHERE TraceKey = hash(CAST($trace_id AS VARCHAR)) AND TraceId = $trace_id
