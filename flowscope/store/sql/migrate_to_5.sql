-- Schema 4 -> 5: the service map reads whole minutes from edge_minutes, which the
-- schema files create and sql/fill_5.sql fills from the calls already derived.
UPDATE schema_meta SET version = 5;
