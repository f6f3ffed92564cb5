-- Escalation ladders. An episode is what reflex did about one alert on one target: its first acting run, the
-- checks after each step, the steps that followed (a reboot, then a replacement), and an escalation. Each of
-- its records is a row of episode_steps, so that the audit page reads an episode as one story by its index.
CREATE TABLE episode_steps (
    record_id TEXT PRIMARY KEY,
    episode   TEXT NOT NULL,
    account   TEXT NOT NULL,
    region    TEXT NOT NULL,
    target    TEXT NOT NULL,
    step      TEXT NOT NULL,
    at_ms     BIGINT NOT NULL
);

CREATE INDEX episode_steps_episode ON episode_steps (episode, record_id);
CREATE INDEX episode_steps_target ON episode_steps (account, region, target, record_id);

-- What replaced broken instances: each instance that joined a target between a run that replaced instances and
-- its recovery check, with what it replaced, the run, and its image and launch template. One that goes
-- unhealthy again within remediation.relapse_window_secs of joining is a relapse (relapsed_ms, relapse_run).
CREATE TABLE replacements (
    account         TEXT NOT NULL,
    region          TEXT NOT NULL,
    target          TEXT NOT NULL,
    instance_id     TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    episode         TEXT NOT NULL,
    replaced        TEXT NOT NULL,
    image_id        TEXT,
    launch_template TEXT,
    joined_ms       BIGINT NOT NULL,
    relapsed_ms     BIGINT,
    relapse_run     TEXT,
    PRIMARY KEY (account, region, target, instance_id)
);

CREATE INDEX replacements_joined ON replacements (account, region, target, joined_ms);
