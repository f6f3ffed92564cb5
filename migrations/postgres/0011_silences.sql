-- Silences: pauses with a required end. A silence holds for one target (or, as the row "*", for every target)
-- from at_ms until until_ms on the database's clock, so that it ends at the same instant on every replica;
-- a durable job announces its end. An operator may lift one before its end (the row is removed).
CREATE TABLE silences (
    id       TEXT PRIMARY KEY,
    account  TEXT NOT NULL,
    region   TEXT NOT NULL,
    target   TEXT NOT NULL,
    reason   TEXT NOT NULL,
    by_whom  TEXT NOT NULL,
    at_ms    BIGINT NOT NULL,
    until_ms BIGINT NOT NULL
);

CREATE INDEX silences_target ON silences (account, region, target, until_ms);
