-- Issuing CAs of the city root that were revoked (`bohai seal revoke-ca`): the root's CRL
-- lists every one, so that each seal made under a revoked issuing CA (its key compromised,
-- say) verifies INVALID wherever the root's CRL is loaded. A new issuing CA under the same
-- root replaces the revoked one in `pki_ca`. Emptied when the whole CA is replaced
-- (`seal init-ca --force`: a new root, whose CRL lists nothing of the old one's).
CREATE TABLE revoked_issuing_cas (
    serial_hex  TEXT PRIMARY KEY,
    cert_der    BYTEA NOT NULL,
    revoked_at  TIMESTAMPTZ NOT NULL,
    reason      TEXT NOT NULL
);
