-- Electronic licences (issue 5): every sealed licence version, its lifecycle events (also the
-- outbox the hub publishes to the licence-events topic), and the signed status lists.

-- Index of each licence version in the status list; 0 is the first.
CREATE SEQUENCE licence_status_index AS BIGINT MINVALUE 0 START 0;
-- Serial part of licence numbers (`DL-2026-00000001`), shared by every type.
CREATE SEQUENCE licence_number_serial AS BIGINT START 1;

CREATE TABLE licences (
    number              TEXT NOT NULL,
    version             INTEGER NOT NULL CHECK (version >= 1),
    licence_type        TEXT NOT NULL,
    department          TEXT NOT NULL REFERENCES departments (code),
    holder_name         TEXT NOT NULL,
    -- The holder's resident identity number or credit code, to find a person's licences.
    holder_id           TEXT NOT NULL,
    status              TEXT NOT NULL
        CHECK (status IN ('valid', 'revoked', 'suspended', 'superseded')),
    status_index        BIGINT NOT NULL UNIQUE,
    valid_from          TIMESTAMPTZ NOT NULL,
    valid_until         TIMESTAMPTZ NOT NULL,
    issued_at           TIMESTAMPTZ NOT NULL,
    seal_id             TEXT NOT NULL REFERENCES seals (seal_id),
    -- The sealed licence, a compact JWS.
    document            TEXT NOT NULL,
    supersedes_number   TEXT,
    supersedes_version  INTEGER,
    successor_number    TEXT,
    successor_version   INTEGER,
    revocation_reason   TEXT,
    -- Set once the `expired` event was recorded.
    expired_at          TIMESTAMPTZ,
    PRIMARY KEY (number, version),
    CHECK (valid_from < valid_until)
);

CREATE INDEX licences_holder ON licences (holder_id);
CREATE INDEX licences_not_valid ON licences (status_index) WHERE status <> 'valid';
CREATE INDEX licences_to_expire ON licences (valid_until) WHERE expired_at IS NULL;

-- Every transition, who made it and when. `published_at` is set once the event is on the
-- licence-events topic (transactional outbox: the event and the change commit together).
CREATE TABLE licence_events (
    id            BIGSERIAL PRIMARY KEY,
    number        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    event         TEXT NOT NULL CHECK (event IN
        ('issued', 'renewed', 'replaced', 'revoked', 'suspended', 'resumed', 'expired')),
    actor         TEXT NOT NULL,
    reason        TEXT,
    at            TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    FOREIGN KEY (number, version) REFERENCES licences (number, version)
);

CREATE INDEX licence_events_unpublished ON licence_events (id) WHERE published_at IS NULL;
CREATE INDEX licence_events_licence ON licence_events (number, id);

-- Signed status lists; the newest is served. `changes_through` is the newest licence_events
-- id whose status change it reflects.
CREATE TABLE licence_status_lists (
    id               BIGSERIAL PRIMARY KEY,
    token            TEXT NOT NULL,
    issued_at        TIMESTAMPTZ NOT NULL,
    changes_through  BIGINT NOT NULL
);
