-- The 64-bit keys derived data and the trace lookup name traces and spans by (schema
-- 8). DuckDB's string hash() maps ids built to a pattern alike (1M trace ids whose
-- two halves count up: 143,051 collisions, and those traces were merged), and its
-- hash of a UHUGEINT folds the halves with XOR (equal halves: 0). These read the
-- ids' hex digits as 64-bit integers and hash those together: no collision among the
-- patterned ids, ~0.3 us a span more to derive. Stored ids are hex (ingest refuses
-- others); a part that is not (a link's '' id) stands in by the string's hash.
-- Macros kept in the file: a reader of it computes the keys its writer stored.
CREATE OR REPLACE MACRO fs_hex64(digits) AS TRY_CAST('0x' || digits AS UBIGINT);

CREATE OR REPLACE MACRO fs_trace_key(trace_id) AS hash(
    coalesce(fs_hex64(trace_id[1:16]), hash(trace_id)),
    coalesce(fs_hex64(trace_id[17:]), hash(trace_id))
);

-- A span's key, from its trace's key: the spans of one trace and of different traces
-- all differ.
CREATE OR REPLACE MACRO fs_span_key(trace_key, span_id) AS
    hash(trace_key, coalesce(fs_hex64(span_id), hash(span_id)));

-- A trace root's (service, operation), for span_steps.RootKey: an automatic flow's
-- rows by one integer comparison. The low 64 bits of an MD5 of the names, the
-- service's length first so that no two pairs spell alike. DuckDB's hash() maps some
-- names alike ('GET /carts/0002000000020000' and 'GET /carts/0002700000027000' of one
-- service), and such flows showed each other's steps. Computed once a trace.
CREATE OR REPLACE MACRO fs_root_key(service, operation) AS
    md5_number_lower(length(service) || ':' || service || operation);
