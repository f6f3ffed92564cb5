-- Durable background work: one table of jobs that every process polls (src/audit/jobs.rs). A job has a kind
-- (which handler runs it), a due time, its payload, its attempts and, while one process runs it, that
-- process's claim. Recovery checks are the first kind and move here; notifications are the second, so that one
-- queued before a crash or a restart is still delivered after it.
CREATE TABLE IF NOT EXISTS jobs (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    dedup_key  TEXT UNIQUE,
    due_ms     INTEGER NOT NULL,
    payload    TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    owner      TEXT,
    claimed_ms INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due_ms);
CREATE INDEX IF NOT EXISTS jobs_kind ON jobs (kind);
INSERT INTO jobs (id, kind, dedup_key, due_ms, payload)
SELECT 'recovery-' || run_id, 'recovery-check', 'recovery-check:' || run_id, due_ms,
       json_object('run-id', run_id, 'target', target, 'expected-in-service', expected_in_service)
FROM recovery_checks;
DROP TABLE recovery_checks;
