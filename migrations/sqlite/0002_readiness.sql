-- One row that /readyz rewrites through the batching writer, proving the store can still commit (a full disk
-- or a read-only file fails it).
CREATE TABLE IF NOT EXISTS readiness (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    at_ms INTEGER NOT NULL
);
