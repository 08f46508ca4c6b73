-- The ingest pipeline: connector checkpoints with the feed counts (written in one
-- transaction), rejected records with their reasons, and the shared repository with the sink's
-- consumer offsets and per-stream marks (written in one transaction with the rows).

CREATE TABLE connector_checkpoints (
    connector   TEXT PRIMARY KEY,
    dataset     TEXT NOT NULL REFERENCES datasets (id),
    position    JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Ingest-side counts per dataset and source (a connector's name, or `http-push`):
-- read = valid + rejected, always.
CREATE TABLE feed_counts (
    dataset         TEXT NOT NULL REFERENCES datasets (id),
    source          TEXT NOT NULL,
    department      TEXT NOT NULL REFERENCES departments (code),
    read_total      BIGINT NOT NULL DEFAULT 0,
    valid_total     BIGINT NOT NULL DEFAULT 0,
    rejected_total  BIGINT NOT NULL DEFAULT 0,
    last_record_at  TIMESTAMPTZ,
    PRIMARY KEY (dataset, source),
    CHECK (read_total = valid_total + rejected_total)
);

-- Every rejected record, with the original bytes and every reason. Also published to the
-- dead-letter topic.
CREATE TABLE rejected_records (
    id           BIGSERIAL PRIMARY KEY,
    dataset      TEXT NOT NULL,
    department   TEXT NOT NULL,
    source       TEXT NOT NULL,
    stream       TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    origin       TEXT NOT NULL,
    reasons      JSONB NOT NULL,
    raw          BYTEA NOT NULL,
    rejected_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (stream, seq)
);
CREATE INDEX rejected_records_latest ON rejected_records (dataset, id DESC);

-- The shared repository: the latest version of each record.
CREATE TABLE repository_records (
    dataset     TEXT NOT NULL REFERENCES datasets (id),
    pk          TEXT NOT NULL,
    data        JSONB NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    first_seen  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    source      TEXT NOT NULL,
    PRIMARY KEY (dataset, pk)
);
CREATE INDEX repository_records_updated ON repository_records (dataset, updated_at);

-- Where the sink resumes in each topic partition.
CREATE TABLE sink_offsets (
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The highest sequence number applied per source stream and partition: a record delivered
-- again after a connector restart carries a number at or below it and is skipped.
CREATE TABLE sink_stream_marks (
    stream     TEXT NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    last_seq   BIGINT NOT NULL,
    PRIMARY KEY (stream, topic, partition)
);

-- Repository-side counts per dataset: valid = inserted + updated once the sink caught up.
CREATE TABLE sink_counts (
    dataset                   TEXT PRIMARY KEY REFERENCES datasets (id),
    inserted_total            BIGINT NOT NULL DEFAULT 0,
    updated_total             BIGINT NOT NULL DEFAULT 0,
    duplicates_skipped_total  BIGINT NOT NULL DEFAULT 0,
    last_write_at             TIMESTAMPTZ
);

-- Bearer tokens of departments; only the SHA-256 of a token is kept.
CREATE TABLE department_tokens (
    id          UUID PRIMARY KEY,
    department  TEXT NOT NULL REFERENCES departments (code),
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);

-- HTTP push requests that carried an Idempotency-Key: a retried request gets the stored
-- answer instead of being ingested twice.
CREATE TABLE http_push_requests (
    stream      TEXT PRIMARY KEY,
    dataset     TEXT NOT NULL REFERENCES datasets (id),
    response    JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
