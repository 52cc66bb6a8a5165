SELECT max(version) FROM schema_meta
