-- DuckDB's buffer memory in use (bytes) and its limit as DuckDB writes it ('19.1 GiB'):
-- what the sandbox's queries may hold at most a share of.
SELECT
    (SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()) AS used_bytes,
    current_setting('memory_limit') AS memory_limit
