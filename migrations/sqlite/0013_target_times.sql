-- The audit page's charts read a target's records over a time range: an index on (target, at_ms) keeps each
-- chart's query to that target's rows in that range, never a scan of the trail.
CREATE INDEX audit_entries_target_at ON audit_entries (target, at_ms);
