-- The audit page's signing key (random, made once, shared by every replica, replaced by `reflex ui rotate-key`)
-- and the sessions it issued (a logout or a rotation ends them; they expire).
CREATE TABLE ui_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE ui_sessions (
    id TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE INDEX ui_sessions_expires ON ui_sessions (expires_ms);
