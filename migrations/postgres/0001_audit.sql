-- The audit trail and the delivery claims: the SQLite schema of the same version, in PostgreSQL's types.
-- Integers are BIGINT throughout (flags too), so both stores read back the same way.
CREATE TABLE IF NOT EXISTS audit_records (
    id          TEXT PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    source      TEXT NOT NULL,
    caller      TEXT,
    auth        TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL,
    status      BIGINT NOT NULL,
    error       TEXT,
    dry_run     BIGINT NOT NULL,
    acted       BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_acted ON audit_records (target, at_ms) WHERE acted > 0;
CREATE TABLE IF NOT EXISTS deliveries (
    key      TEXT PRIMARY KEY,
    audit_id TEXT NOT NULL,
    at_ms    BIGINT NOT NULL,
    summary  TEXT
);
