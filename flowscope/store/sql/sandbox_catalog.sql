-- Every table and view by lower-case name, with where it lives (the SQL sandbox's
-- check that a dotted name is one, not a file DuckDB would read instead).
SELECT lower(table_name), database_name, schema_name FROM duckdb_tables()
UNION ALL
SELECT lower(view_name), database_name, schema_name FROM duckdb_views()
