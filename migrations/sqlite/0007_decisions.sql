-- A run's decision (what it will do to which instances, and why it may) is a typed row of its own, written in
-- the same commit as the run's intent, so that it can be acted on later: a takeover finishes exactly what its
-- dead attempt decided. `body` is the decision as JSON (src/engine/decide.rs). Intents from before this table
-- get their decision from the plan their record noted.
CREATE TABLE IF NOT EXISTS decisions (
    run_id     TEXT PRIMARY KEY,
    target     TEXT NOT NULL,
    decided_ms INTEGER NOT NULL,
    steps      INTEGER NOT NULL,
    body       TEXT NOT NULL
);
INSERT INTO decisions (run_id, target, decided_ms, steps, body)
SELECT id, target, COALESCE(acted_ms, at_ms), acted,
       json_object('run-id', id, 'target', target,
                   'steps', json(COALESCE(json_extract(detail, '$.plan.act_on'), '[]')), 'in-service', 0)
FROM audit_records WHERE outcome = 'acting' AND target IS NOT NULL
ON CONFLICT (run_id) DO NOTHING;
