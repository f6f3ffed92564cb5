-- Held decisions of targets in approve mode. A run that decided to act holds its decision here, with what the
-- approvers see (body: the decision, the summary and the evidence), until enough distinct approvers approve it
-- (state approved), one rejects it (rejected) or it expires (expired: a durable job fires at expires_ms on the
-- database's clock, once across replicas). approvers is the JSON list of who approved, through which door.
CREATE TABLE approvals (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    region      TEXT NOT NULL,
    target      TEXT NOT NULL,
    state       TEXT NOT NULL,
    required    INTEGER NOT NULL,
    approvers   TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    resolved_ms INTEGER,
    resolution  TEXT,
    body        TEXT NOT NULL
);

CREATE INDEX approvals_pending ON approvals (state, expires_ms);
CREATE INDEX approvals_target ON approvals (account, region, target, state);
