-- Schema 3 -> 4. step_keys gained Peer; steps stored before name theirs again as
-- new traces with them are derived (sql/dv_persist.sql keeps the least name).
ALTER TABLE step_keys ADD COLUMN Peer VARCHAR;
UPDATE schema_meta SET version = 4;
