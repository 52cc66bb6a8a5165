-- Where a table or view of this name lives (the SQL sandbox's check that a dotted
-- name is one, not a file DuckDB would read instead).
SELECT database_name, schema_name FROM duckdb_tables() WHERE lower(table_name) = $name
UNION ALL
SELECT database_name, schema_name FROM duckdb_views() WHERE lower(view_name) = $name
