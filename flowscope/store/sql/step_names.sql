-- Names, parents and called peers of the given steps.
SELECT StepKey, ParentStepKey, ServiceName, SpanName, SpanKind, Peer
FROM a_step_keys WHERE StepKey IN (SELECT unnest(CAST($keys AS UBIGINT[])))
