-- The SQLite migration of this version, in PostgreSQL types: a run's decision as a typed row of its own.
CREATE TABLE IF NOT EXISTS decisions (
    run_id     TEXT PRIMARY KEY,
    target     TEXT NOT NULL,
    decided_ms BIGINT NOT NULL,
    steps      BIGINT NOT NULL,
    body       TEXT NOT NULL
);
INSERT INTO decisions (run_id, target, decided_ms, steps, body)
SELECT id, target, COALESCE(acted_ms, at_ms), acted,
       json_build_object('run-id', id, 'target', target,
                         'steps', COALESCE(detail::json -> 'plan' -> 'act_on', '[]'::json), 'in-service', 0)::text
FROM audit_records WHERE outcome = 'acting' AND target IS NOT NULL
ON CONFLICT (run_id) DO NOTHING;
