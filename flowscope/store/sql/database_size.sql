-- The database file's blocks (DuckDB's own accounting; no ClickHouse counterpart):
-- used ones hold data, free ones were left by checkpoints and are reused as it grows.
SELECT block_size, total_blocks, used_blocks, free_blocks
FROM pragma_database_size()
WHERE database_name = current_database()
