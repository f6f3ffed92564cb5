-- The audit page's charts of runs read records over a time range (the last day, week or month): an index on
-- at_ms keeps every target's chart to the rows of that range, and one on a target's (target, at_ms) that also
-- holds what the charts count (where, who sent it, what came of it, whether it acted) answers a target's charts
-- from the index alone, never reading the records themselves. It takes the place of 0013's (target, at_ms).
CREATE INDEX audit_entries_at ON audit_entries (at_ms);
CREATE INDEX audit_entries_target_counts
    ON audit_entries (target, at_ms, account, region, source, outcome, acted, dry_run, id);
DROP INDEX audit_entries_target_at;
-- The cooldown and the budgets read a target's runs that acted. With the index above also keyed by target,
-- their own index must say more of what they ask (dry_run = 0 as well as the target), or a storm of refused
-- alerts, each a record of the target, would be read on every alert.
CREATE INDEX audit_entries_last_acted ON audit_entries (target, dry_run, at_ms) WHERE acted > 0;
DROP INDEX audit_entries_acted;
