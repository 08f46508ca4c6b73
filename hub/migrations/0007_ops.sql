-- Operations (issue 7): samples of the feed counts, from which the dashboard draws ingest and
-- reject rates over time, and the run state of the connectors `bohai serve` runs.

-- The totals of every feed at one moment; every sample of one round shares its `at`.
-- Rates are differences between consecutive samples of the same feed.
CREATE TABLE ops_feed_samples (
    at              TIMESTAMPTZ NOT NULL,
    dataset         TEXT NOT NULL,
    source          TEXT NOT NULL,
    read_total      BIGINT NOT NULL,
    valid_total     BIGINT NOT NULL,
    rejected_total  BIGINT NOT NULL,
    PRIMARY KEY (dataset, source, at)
);
CREATE INDEX ops_feed_samples_at ON ops_feed_samples (at);

-- The state of each connector as `bohai serve` last saw it: running, finished (its source
-- is complete) or failed (it stopped with an error, kept in `error`).
CREATE TABLE ops_connector_runs (
    connector   TEXT PRIMARY KEY,
    dataset     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'finished', 'failed')),
    error       TEXT,
    started_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
