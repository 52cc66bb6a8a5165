-- Schema 7 -> 8: traces, spans and flows' roots are named in derived data by the keys
-- of 004_keys.sql instead of DuckDB's hash() of the strings; sql/fill_8.sql computes
-- them once the schema files have created the macros.
UPDATE schema_meta SET version = 8;
