-- Schema 5 -> 6: smaller derived rows, the same answers.
-- span_steps.CpFraction (DOUBLE) became CpNano, the same share in billionths, rounded
-- as the readers rounded it before summing.
ALTER TABLE span_steps RENAME COLUMN CpFraction TO CpNano;
ALTER TABLE span_steps ALTER CpNano TYPE UINTEGER USING CAST(round(CpNano * 1e9) AS UINTEGER);
-- edge_calls names traces by their 64-bit keys only: TraceId went (TraceKey was there),
-- SourceTraceId became SourceTraceKey (0 for the call's own trace).
ALTER TABLE edge_calls DROP COLUMN TraceId;
ALTER TABLE edge_calls ADD COLUMN SourceTraceKey UBIGINT NOT NULL DEFAULT 0;
UPDATE edge_calls SET SourceTraceKey = hash(SourceTraceId) WHERE SourceTraceId <> '';
ALTER TABLE edge_calls DROP COLUMN SourceTraceId;
UPDATE schema_meta SET version = 6;
