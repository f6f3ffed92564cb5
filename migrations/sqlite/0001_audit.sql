-- The audit trail and the delivery claims. IF NOT EXISTS so that a store created before migrations were
-- tracked is adopted as it is.
CREATE TABLE IF NOT EXISTS audit_records (
    id          TEXT PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    source      TEXT NOT NULL,
    caller      TEXT,
    auth        TEXT NOT NULL,
    target      TEXT,
    outcome     TEXT NOT NULL,
    status      INTEGER NOT NULL,
    error       TEXT,
    dry_run     INTEGER NOT NULL,
    acted       INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_acted ON audit_records (target, at_ms) WHERE acted > 0;
CREATE TABLE IF NOT EXISTS deliveries (
    key      TEXT PRIMARY KEY,
    audit_id TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    summary  TEXT
);
