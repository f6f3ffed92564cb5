-- The audit page's runs chart reads every target's records over a time range (the last day, week or month):
-- an index on at_ms keeps it to the rows of that range, never a scan of the trail.
CREATE INDEX audit_entries_at ON audit_entries (at_ms);
