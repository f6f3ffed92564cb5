-- A target is known by its account and region as well as its name (TargetId): the same balancer name in two
-- accounts or regions is two targets with their own breakers, pauses, leases, cooldowns and budgets.
-- `home` records the account (learned with STS GetCallerIdentity) and region reflex itself runs in; rows from
-- before this version are that home's. Chain entries are never rewritten (their hashes cover their columns):
-- an entry without an account is read through `audit_records` with the home's account and region. The tables
-- keyed by target get account and region in their keys; their rows from before get '' until reflex, on its
-- next start, fills in the home it learned.
CREATE TABLE IF NOT EXISTS home (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    account    TEXT NOT NULL,
    region     TEXT NOT NULL,
    learned_ms INTEGER NOT NULL
);
ALTER TABLE audit_entries ADD COLUMN account TEXT;
ALTER TABLE audit_entries ADD COLUMN region TEXT;
DROP VIEW audit_records;
CREATE VIEW audit_records AS
SELECT e.seq, e.id, e.at_ms, e.source, e.caller, e.auth, e.target, e.outcome, e.status, e.error, e.dry_run,
       e.acted, e.duration_ms, e.detail, e.acted_ms, e.prev_hash, e.hash,
       CASE WHEN e.target IS NULL OR e.account IS NOT NULL THEN e.account
            ELSE (SELECT account FROM home WHERE id = 1) END AS account,
       CASE WHEN e.target IS NULL OR e.region IS NOT NULL THEN e.region
            ELSE (SELECT region FROM home WHERE id = 1) END AS region
FROM audit_entries e
WHERE NOT EXISTS (SELECT 1 FROM audit_entries n WHERE n.id = e.id AND n.seq > e.seq);

CREATE TABLE breakers_placed (
    account     TEXT NOT NULL,
    region      TEXT NOT NULL,
    target      TEXT NOT NULL,
    failures    INTEGER NOT NULL DEFAULT 0,
    open_reason TEXT,
    opened_ms   INTEGER,
    PRIMARY KEY (account, region, target)
);
INSERT INTO breakers_placed SELECT '', '', target, failures, open_reason, opened_ms FROM breakers;
DROP TABLE breakers;
ALTER TABLE breakers_placed RENAME TO breakers;

CREATE TABLE pauses_placed (
    account TEXT NOT NULL,
    region  TEXT NOT NULL,
    target  TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at_ms   INTEGER NOT NULL,
    PRIMARY KEY (account, region, target)
);
INSERT INTO pauses_placed SELECT '', '', target, reason, at_ms FROM pauses;
DROP TABLE pauses;
ALTER TABLE pauses_placed RENAME TO pauses;

CREATE TABLE target_leases_placed (
    account    TEXT NOT NULL,
    region     TEXT NOT NULL,
    target     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    audit_id   TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (account, region, target)
);
INSERT INTO target_leases_placed SELECT '', '', target, owner, audit_id, expires_ms FROM target_leases;
DROP TABLE target_leases;
ALTER TABLE target_leases_placed RENAME TO target_leases;

ALTER TABLE decisions ADD COLUMN account TEXT NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN region TEXT NOT NULL DEFAULT '';
