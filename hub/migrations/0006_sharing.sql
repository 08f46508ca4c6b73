-- Data sharing with governance (issue 6): scoped, expiring tokens; access requests and
-- approvals (subscriptions); and the hash-chained, append-only audit log.

-- Token scopes: `publish` (push records, decide requests for the department's datasets),
-- `read` (catalogue, requests, masked reads), `issue` (licences and seal signatures),
-- `admin` (hub operators: decide any request, see every token). Tokens made before scopes
-- existed could push, issue and sign: they keep exactly that.
ALTER TABLE department_tokens
    ADD COLUMN scopes TEXT[] NOT NULL DEFAULT ARRAY['publish', 'issue'],
    ADD COLUMN expires_at TIMESTAMPTZ,
    ADD CONSTRAINT department_tokens_scopes CHECK (
        cardinality(scopes) > 0 AND scopes <@ ARRAY['publish', 'read', 'issue', 'admin']);
ALTER TABLE department_tokens ALTER COLUMN scopes DROP DEFAULT;

-- Access requests for a dataset by another department, and their decisions.
CREATE TABLE subscriptions (
    id            UUID PRIMARY KEY,
    dataset       TEXT NOT NULL REFERENCES datasets (id),
    department    TEXT NOT NULL REFERENCES departments (code),
    fields        TEXT[] NOT NULL CHECK (cardinality(fields) > 0),
    purpose       TEXT NOT NULL CHECK (length(purpose) > 0),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn')),
    requested_at  TIMESTAMPTZ NOT NULL,
    -- The owner must answer by then; a pending request past it is overdue.
    reply_due     TIMESTAMPTZ NOT NULL,
    -- The requested end of access; an approval grants access until then.
    valid_until   TIMESTAMPTZ NOT NULL,
    decided_at    TIMESTAMPTZ,
    decided_by    TEXT,
    reason        TEXT,
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK (status <> 'rejected' OR length(reason) > 0)
);

CREATE INDEX subscriptions_reader ON subscriptions (department, dataset);
CREATE INDEX subscriptions_pending ON subscriptions (reply_due) WHERE status = 'pending';

-- The audit log. Entry `seq` carries `prev_hash`, the `hash` of entry `seq - 1` (32 zero
-- bytes for the first), and its own `hash`, the SHA-256 over `prev_hash` and its content
-- (see hub/src/audit/chain.rs). `detail` is JSON text, hashed byte for byte.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY CHECK (seq > 0),
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    dataset    TEXT,
    subject    TEXT,
    keys       TEXT[] NOT NULL,
    count      BIGINT NOT NULL,
    purpose    TEXT,
    detail     TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL CHECK (length(prev_hash) = 32),
    hash       BYTEA NOT NULL CHECK (length(hash) = 32)
);

CREATE INDEX audit_log_dataset_action ON audit_log (dataset, action);
CREATE INDEX audit_log_keys ON audit_log USING GIN (keys);

-- Append-only: updates, deletes and truncation are refused. (The table's owner can still
-- disable the trigger; `bohai audit verify` finds what was changed that way.)
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Every schema version a dataset has had. A new version is stored only if it is backward
-- compatible with every earlier one (hub/src/registry.rs, schemas/src/compat.rs); a stored
-- version may not change.
CREATE TABLE dataset_schemas (
    dataset    TEXT NOT NULL REFERENCES datasets (id),
    version    INTEGER NOT NULL CHECK (version > 0),
    schema     JSONB NOT NULL,
    stored_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, version)
);
