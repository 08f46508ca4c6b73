-- The city PKI and electronic seals (issue 4). Private keys are stored only as
-- `EncryptedKey` strings (`v1.<nonce>.<ciphertext>`, AES-256-GCM under the master key of
-- `pki.master_key_file`, bound to a label: "root", "issuing" or the seal id).

-- The one city CA: the root (its key may be exported and removed) and the issuing CA.
CREATE TABLE pki_ca (
    id                  SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    root_cert_der       BYTEA NOT NULL,
    root_key_encrypted  TEXT,
    issuing_cert_der    BYTEA NOT NULL,
    issuing_key_encrypted TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Seal certificates with their keys and seal records.
CREATE TABLE seals (
    seal_id            TEXT PRIMARY KEY,
    department         TEXT NOT NULL REFERENCES departments (code),
    name               TEXT NOT NULL,
    seal_type          TEXT NOT NULL CHECK (seal_type IN ('official', 'contract', 'business')),
    serial_hex         TEXT NOT NULL,
    cert_der           BYTEA NOT NULL,
    chain_der          BYTEA[] NOT NULL,
    key_encrypted      TEXT NOT NULL,
    record_der         BYTEA NOT NULL,
    image_digest       BYTEA NOT NULL,
    not_before         TIMESTAMPTZ NOT NULL,
    not_after          TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at         TIMESTAMPTZ,
    revocation_reason  TEXT,
    imported           BOOLEAN NOT NULL DEFAULT false,
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);

CREATE INDEX seals_department ON seals (department, created_at DESC);

-- Every CRL issued by the issuing CA; the newest is published.
CREATE TABLE crls (
    number       BIGINT PRIMARY KEY CHECK (number > 0),
    der          BYTEA NOT NULL,
    this_update  TIMESTAMPTZ NOT NULL,
    next_update  TIMESTAMPTZ NOT NULL
);
