-- Names and parents of the given steps.
SELECT StepKey, ParentStepKey, ServiceName, SpanName, SpanKind
FROM a_step_keys WHERE StepKey IN (SELECT unnest(CAST($keys AS UBIGINT[])))
