-- The kill switch: a paused target (or "*", every target) is refused without any AWS call until it is resumed.
-- The state lives in the store, so it survives restarts and holds for every process sharing the store.
CREATE TABLE IF NOT EXISTS pauses (
    target TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at_ms  INTEGER NOT NULL
);
