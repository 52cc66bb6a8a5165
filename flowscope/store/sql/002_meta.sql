-- Schema version of this file; a database with another version is refused.
CREATE TABLE IF NOT EXISTS schema_meta (
    version INTEGER NOT NULL
);

-- Files already loaded by `flowscope import`, by content hash, so a second
-- import of the same file adds nothing.
CREATE TABLE IF NOT EXISTS imported_files (
    Sha256     VARCHAR NOT NULL,
    Path       VARCHAR NOT NULL,
    Spans      BIGINT NOT NULL,
    ImportedAt TIMESTAMP NOT NULL
);
