-- Failures that stop nothing else, and one holder of the workers per hub database.

-- Records the validator passed and the repository still refused (the database's reason is in
-- rejected_records and on the dead-letter topic): once the sink caught up,
-- valid = inserted + updated + refused.
ALTER TABLE sink_counts ADD COLUMN refused_total BIGINT NOT NULL DEFAULT 0;

-- Components that stopped because they cannot work until someone changes something (a missing
-- table, a permission denied, a schema that cannot load): shown by `bohai status`,
-- /api/v1/ops/feeds and the dashboard. A row is removed when the component runs again.
CREATE TABLE ops_component_failures (
    component   TEXT PRIMARY KEY,
    instance    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    since       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The `bohai serve` instance that runs the workers (sink, connectors, licence events,
-- subscription delivery, background duties) on this database. Another instance finds the hold
-- and does not start its workers; a hold not renewed before `expires_at` (its holder crashed)
-- may be taken over.
CREATE TABLE worker_holds (
    name          TEXT PRIMARY KEY,
    instance      TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    http_addr     TEXT NOT NULL,
    since         TIMESTAMPTZ NOT NULL DEFAULT now(),
    renewed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL
);
