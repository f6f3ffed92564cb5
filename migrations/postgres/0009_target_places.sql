-- The SQLite migration of this version, in PostgreSQL types: targets known by account and region as well as
-- name; `home` records the account and region reflex runs in; rows from before are that home's.
CREATE TABLE IF NOT EXISTS home (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    account    TEXT NOT NULL,
    region     TEXT NOT NULL,
    learned_ms BIGINT NOT NULL
);
DROP VIEW audit_records;
ALTER TABLE audit_entries ADD COLUMN IF NOT EXISTS account TEXT;
ALTER TABLE audit_entries ADD COLUMN IF NOT EXISTS region TEXT;
CREATE VIEW audit_records AS
SELECT e.seq, e.id, e.at_ms, e.source, e.caller, e.auth, e.target, e.outcome, e.status, e.error, e.dry_run,
       e.acted, e.duration_ms, e.detail, e.acted_ms, e.prev_hash, e.hash,
       CASE WHEN e.target IS NULL OR e.account IS NOT NULL THEN e.account
            ELSE (SELECT account FROM home WHERE id = 1) END AS account,
       CASE WHEN e.target IS NULL OR e.region IS NOT NULL THEN e.region
            ELSE (SELECT region FROM home WHERE id = 1) END AS region
FROM audit_entries e
WHERE NOT EXISTS (SELECT 1 FROM audit_entries n WHERE n.id = e.id AND n.seq > e.seq);

ALTER TABLE breakers ADD COLUMN account TEXT NOT NULL DEFAULT '';
ALTER TABLE breakers ADD COLUMN region TEXT NOT NULL DEFAULT '';
ALTER TABLE breakers DROP CONSTRAINT breakers_pkey;
ALTER TABLE breakers ADD PRIMARY KEY (account, region, target);

ALTER TABLE pauses ADD COLUMN account TEXT NOT NULL DEFAULT '';
ALTER TABLE pauses ADD COLUMN region TEXT NOT NULL DEFAULT '';
ALTER TABLE pauses DROP CONSTRAINT pauses_pkey;
ALTER TABLE pauses ADD PRIMARY KEY (account, region, target);

ALTER TABLE target_leases ADD COLUMN account TEXT NOT NULL DEFAULT '';
ALTER TABLE target_leases ADD COLUMN region TEXT NOT NULL DEFAULT '';
ALTER TABLE target_leases DROP CONSTRAINT target_leases_pkey;
ALTER TABLE target_leases ADD PRIMARY KEY (account, region, target);

ALTER TABLE decisions ADD COLUMN IF NOT EXISTS account TEXT NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS region TEXT NOT NULL DEFAULT '';
