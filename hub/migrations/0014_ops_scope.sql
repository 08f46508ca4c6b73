-- The `ops` scope (issue 15, item 6): the operations endpoints (`/api/v1/ops/...`: feeds,
-- overview, rates, dead letters) show every department's rejected records and which
-- department reads which dataset, so they need a token of their own. `admin` does not
-- include it: admin tokens are held by departments to decide access requests.
ALTER TABLE department_tokens DROP CONSTRAINT department_tokens_scopes;
ALTER TABLE department_tokens ADD CONSTRAINT department_tokens_scopes CHECK (
    cardinality(scopes) > 0 AND scopes <@ ARRAY['publish', 'read', 'issue', 'admin', 'ops']);
