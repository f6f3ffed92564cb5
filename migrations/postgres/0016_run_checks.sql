-- Which run each check record checked (a replacement's or a ladder step's), so that a run's page finds its
-- check by an index rather than by matching the records' JSON. Written in the commit of the check's record;
-- the checks recorded before this table are carried over from their records.
CREATE TABLE run_checks (
    record_id TEXT PRIMARY KEY,
    run_id    TEXT NOT NULL,
    at_ms     BIGINT NOT NULL
);
CREATE INDEX run_checks_run ON run_checks (run_id, record_id);
INSERT INTO run_checks (record_id, run_id, at_ms)
SELECT id, run_id, at_ms FROM (
    SELECT id, at_ms,
           COALESCE(detail::jsonb -> 'recovery' ->> 'run', detail::jsonb -> 'ladder' ->> 'run') AS run_id
    FROM audit_records WHERE source = 'recovery-check'
) checks
WHERE run_id IS NOT NULL
ON CONFLICT (record_id) DO NOTHING;
