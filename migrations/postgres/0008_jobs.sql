-- The SQLite migration of this version, in PostgreSQL types: durable background work in one table of jobs;
-- recovery checks move here.
CREATE TABLE IF NOT EXISTS jobs (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    dedup_key  TEXT UNIQUE,
    due_ms     BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    owner      TEXT,
    claimed_ms BIGINT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due_ms);
CREATE INDEX IF NOT EXISTS jobs_kind ON jobs (kind);
INSERT INTO jobs (id, kind, dedup_key, due_ms, payload)
SELECT 'recovery-' || run_id, 'recovery-check', 'recovery-check:' || run_id, due_ms,
       json_build_object('run-id', run_id, 'target', target, 'expected-in-service', expected_in_service)::text
FROM recovery_checks;
DROP TABLE recovery_checks;
