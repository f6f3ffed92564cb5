-- A step whose [[actions]] entry limits how often it acts on one instance reads the target's recent decisions:
-- by target and time, through this index.
CREATE INDEX IF NOT EXISTS decisions_by_target ON decisions (account, region, target, decided_ms);
