-- One row that /readyz rewrites through the batching writer, proving the store can still commit.
CREATE TABLE IF NOT EXISTS readiness (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    at_ms BIGINT NOT NULL
);
