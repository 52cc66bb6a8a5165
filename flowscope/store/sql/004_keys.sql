-- The 64-bit keys derived data and the trace lookup name traces and spans by (schema
-- 8). DuckDB's string hash() maps ids built to a pattern alike (1M trace ids whose
-- two halves count up: 143,051 collisions, and those traces were merged), and its
-- hash of a UHUGEINT folds the halves with XOR (equal halves: 0). These read the
-- ids' hex digits as 64-bit integers and hash those together: no collision among the
-- patterned ids, 0.3 us a span more. An id that is not hex (no stored one: ingest
-- refuses them) falls back to the string hash. Macros stored in the file: a reader
-- of it computes the keys its writer stored.
CREATE OR REPLACE MACRO fs_hex64(digits) AS TRY_CAST('0x' || digits AS UBIGINT);

CREATE OR REPLACE MACRO fs_trace_key(trace_id) AS coalesce(
    CASE WHEN length(trace_id) = 32
        AND fs_hex64(trace_id[1:16]) IS NOT NULL AND fs_hex64(trace_id[17:32]) IS NOT NULL
        THEN hash(fs_hex64(trace_id[1:16]), fs_hex64(trace_id[17:32])) END,
    hash(trace_id)
);

-- A span's key, from its trace's key: the span ids of one trace and of different
-- traces all differ.
CREATE OR REPLACE MACRO fs_span_key(trace_key, span_id) AS
    hash(trace_key, coalesce(fs_hex64(span_id), hash(span_id)));
