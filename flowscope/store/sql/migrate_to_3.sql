-- Schema 2 -> 3. span_steps gained RootKey, a function of the trace's root (kept in
-- trace_index), so existing rows get theirs here; traces still queued are derived
-- again anyway.
ALTER TABLE span_steps ADD COLUMN RootKey UBIGINT NOT NULL DEFAULT 0;
UPDATE span_steps SET RootKey = hash(t.RootService, t.RootOperation)
FROM trace_index t
WHERE span_steps.TraceKey = t.TraceKey AND t.RootService IS NOT NULL;
-- otel_traces gained CommitSeq: stored spans are all taken in already (0 <= the mark,
-- derive_state, which the schema files create after this script, as they are rerun).
ALTER TABLE otel_traces ADD COLUMN CommitSeq UBIGINT NOT NULL DEFAULT 0;
UPDATE schema_meta SET version = 3;
