-- The city root signs a CRL of its own, for the CA certificates it issued (the issuing CA):
-- RFC 5280 path validation checks each certificate of a seal's path against its issuer's
-- CRL, and a verifier without the root's cannot know whether the issuing CA was revoked.
-- CRLs of both issuers share one cRLNumber sequence (increasing for each issuer).
ALTER TABLE crls
    ADD COLUMN issuer TEXT NOT NULL DEFAULT 'issuing' CHECK (issuer IN ('issuing', 'root'));
CREATE INDEX crls_issuer_number ON crls (issuer, number DESC);
