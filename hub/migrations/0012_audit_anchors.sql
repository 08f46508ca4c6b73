-- Trust boundaries of the audit log (issue 15, items 7 and 8).
--
-- 1. The person behind an act: audit entries, tokens and access requests name the person
--    (`actor`) besides the department. An entry with a person is hashed with the chain's
--    second domain tag (hub/src/audit/chain.rs); older entries keep theirs.
ALTER TABLE audit_log ADD COLUMN person TEXT CHECK (person IS NULL OR length(person) > 0);
ALTER TABLE department_tokens ADD COLUMN actor TEXT CHECK (actor IS NULL OR length(actor) > 0);
-- Who asked, and the first of two admins when the requesting department approves its own
-- request (docs/security.md, "Approving is a different person from requesting").
ALTER TABLE subscriptions
    ADD COLUMN requested_by TEXT,
    ADD COLUMN first_approved_by TEXT,
    ADD COLUMN first_approved_at TIMESTAMPTZ;

-- 2. Signed checkpoints of the chain: the hub signs (seq, hash, time) with the status
--    authority's seal; a verifier holding a checkpoint finds any truncation or rewrite of the
--    entries up to `seq`. Append-only like the log itself.
CREATE TABLE audit_checkpoints (
    seq        BIGINT NOT NULL CHECK (seq >= 0),
    hash       BYTEA NOT NULL CHECK (length(hash) = 32),
    issued_at  TIMESTAMPTZ NOT NULL,
    -- The signed checkpoint, a compact JWS (`bohai-audit-checkpoint+jwt`).
    token      TEXT NOT NULL,
    PRIMARY KEY (seq, issued_at)
);
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- 3. The hub's runtime role (`database.url`) apart from the owner role that runs these
--    migrations (`database.owner_url`). Called by the owner after every migration run, so
--    tables added later are granted too. The runtime role reads and writes the hub's tables,
--    but may only read and append the audit log and its checkpoints; owning nothing, it can
--    neither alter, drop nor disable the triggers of any table.
CREATE FUNCTION bohai_grant_runtime(runtime TEXT) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t RECORD;
    append_only CONSTANT TEXT[] := ARRAY['audit_log', 'audit_checkpoints'];
BEGIN
    IF runtime = current_user THEN
        RAISE EXCEPTION 'the runtime role % is the owner role: nothing is separated', runtime;
    END IF;
    IF pg_has_role(runtime, current_user, 'USAGE') THEN
        RAISE EXCEPTION 'the runtime role % is a member of the owner role %: it could act as the owner',
            runtime, current_user;
    END IF;
    -- Two grants at once (a command starting while the hub starts) would collide on the
    -- catalogue rows ("tuple concurrently updated"): one at a time.
    PERFORM pg_advisory_xact_lock(hashtext('bohai_grant_runtime'));
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), runtime);
    FOR t IN
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('REVOKE ALL ON %I FROM %I', t.relname, runtime);
        IF t.relname = ANY (append_only) THEN
            EXECUTE format('GRANT SELECT, INSERT ON %I TO %I', t.relname, runtime);
        ELSIF t.relname = '_sqlx_migrations' THEN
            EXECUTE format('GRANT SELECT ON %I TO %I', t.relname, runtime);
        ELSE
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO %I', t.relname, runtime);
        END IF;
    END LOOP;
    EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I',
        current_schema(), runtime);
END
$$;
