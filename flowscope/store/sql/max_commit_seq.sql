-- The last commit's number: the writer goes on from it, and journal records up to it
-- are stored. Derivation's mark survives retention deleting the newest spans.
SELECT greatest(
    (SELECT coalesce(max(CommitSeq), 0) FROM otel_traces),
    (SELECT coalesce(max(DerivedSeq), 0) FROM derive_state)
)
