-- The SQLite migration of this version, in PostgreSQL's types. A tamper-evident trail: every version of a
-- record (an intent, then its outcome) becomes an entry of its own in `audit_entries`, appended and never
-- rewritten, chained by hashes (`prev_hash`, `hash`; see src/audit/chain.rs).
-- `audit_records` becomes the view of each record's newest version, so everything that read it still does.
-- Records from before the chain are carried over in time order; reflex hashes them once when it next opens the
-- store.
CREATE TABLE audit_entries (
    seq         BIGINT PRIMARY KEY,
    id          TEXT NOT NULL,
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
    detail      TEXT NOT NULL,
    acted_ms    BIGINT,
    prev_hash   TEXT,
    hash        TEXT
);
INSERT INTO audit_entries (seq, id, at_ms, source, caller, auth, target, outcome, status, error, dry_run, acted,
                           duration_ms, detail, acted_ms)
SELECT ROW_NUMBER() OVER (ORDER BY at_ms, id), id, at_ms, source, caller, auth, target, outcome, status, error,
       dry_run, acted, duration_ms, detail, acted_ms
FROM audit_records;
DROP TABLE audit_records;
CREATE INDEX audit_entries_id ON audit_entries (id, seq);
CREATE INDEX audit_entries_acted ON audit_entries (target, at_ms) WHERE acted > 0;
CREATE VIEW audit_records AS
SELECT * FROM audit_entries e
WHERE NOT EXISTS (SELECT 1 FROM audit_entries n WHERE n.id = e.id AND n.seq > e.seq);
-- Where the chain ends (the last entry written) and where its verifiable part starts (the last pruned entry).
CREATE TABLE audit_chain (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    head_seq        BIGINT NOT NULL,
    head_hash       TEXT NOT NULL,
    checkpoint_seq  BIGINT NOT NULL,
    checkpoint_hash TEXT NOT NULL
);
INSERT INTO audit_chain VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
                                0, '0000000000000000000000000000000000000000000000000000000000000000');
