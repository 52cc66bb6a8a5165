-- The columns of every table and view, by lower-case name (the widest of a name's
-- places): the SQL sandbox's estimate of how wide a `*` over it expands.
SELECT lower(table_name), max(columns) FROM (
    SELECT table_name, database_name, schema_name, count(*) AS columns
    FROM duckdb_columns()
    GROUP BY ALL
)
GROUP BY 1
