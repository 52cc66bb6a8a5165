-- DuckDB's buffer memory that queries hold (bytes), and its limit as DuckDB writes it
-- ('19.1 GiB'): what the sandbox's queries may hold at most a share of. Blocks of the
-- stored tables (BASE_TABLE) and their metadata are left out: a scan leaves the pool
-- full of them (199 of 200 MB after one of a 275 MB file), and DuckDB evicts them as
-- soon as anything needs the room.
SELECT
    (
        SELECT coalesce(sum(memory_usage_bytes), 0)
        FROM duckdb_memory()
        WHERE tag NOT IN ('BASE_TABLE', 'METADATA')
    ) AS used_bytes,
    current_setting('memory_limit') AS memory_limit
