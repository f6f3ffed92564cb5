-- The tamper-evident trail: every record written (an intent, then its outcome) is appended here, never
-- rewritten, with a SHA-256 over the previous entry's hash and the record's canonical JSON. `audit_records` is
-- the current view of each record, checked against its newest entry by `reflex audit verify`.
CREATE TABLE IF NOT EXISTS audit_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    content   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_record ON audit_log (record_id, seq);
-- Where the chain starts after a prune: the last removed entry's seq and hash, and the prune's cutoff.
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    seq               INTEGER NOT NULL,
    hash              TEXT NOT NULL,
    pruned_before_ms  INTEGER NOT NULL
);
