-- Leases instead of eternal claims. A delivery claim names the process that holds it; a claim whose holder
-- stopped heartbeating (killed, crashed, restarted) is taken over by the next redelivery, which learns the
-- attempt it replaces (`previous`). A run acting on a target holds that target's lease, so that one run acts
-- per target across every process sharing the store. The cooldown counts from when a run acted (`acted_ms`).
ALTER TABLE audit_records ADD COLUMN acted_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN owner TEXT;
ALTER TABLE deliveries ADD COLUMN previous TEXT;
CREATE TABLE IF NOT EXISTS processes (
    owner        TEXT PRIMARY KEY,
    started_ms   INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS target_leases (
    target     TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    audit_id   TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
