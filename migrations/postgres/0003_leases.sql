-- Leases instead of eternal claims (see the SQLite migration of the same version): claim owners, the
-- processes' heartbeats, one run lease per target, and when a run acted.
ALTER TABLE audit_records ADD COLUMN IF NOT EXISTS acted_ms BIGINT;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS owner TEXT;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS previous TEXT;
CREATE TABLE IF NOT EXISTS processes (
    owner        TEXT PRIMARY KEY,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS target_leases (
    target     TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    audit_id   TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
