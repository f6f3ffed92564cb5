-- Runaway protection. `breakers`: per target, the consecutive runs that hit AWS errors, and, while the breaker is
-- open, why and since when (it stays open until an operator resets it). `recovery_checks`: a run that acted is
-- checked again later; the pending check lives here so that it survives restarts, and a claim (owner,
-- claimed_ms) makes exactly one process run it.
CREATE TABLE IF NOT EXISTS breakers (
    target      TEXT PRIMARY KEY,
    failures    INTEGER NOT NULL DEFAULT 0,
    open_reason TEXT,
    opened_ms   INTEGER
);
CREATE TABLE IF NOT EXISTS recovery_checks (
    run_id            TEXT PRIMARY KEY,
    target            TEXT NOT NULL,
    due_ms            INTEGER NOT NULL,
    expected_in_service INTEGER NOT NULL,
    owner             TEXT,
    claimed_ms        INTEGER
);
CREATE INDEX IF NOT EXISTS recovery_checks_due ON recovery_checks (due_ms);
