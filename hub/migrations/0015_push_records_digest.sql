-- An Idempotency-Key names one request of one dataset. Before a piece of a push is handed to
-- the broker, the request's row records the dataset and how far it was sent: sent_records
-- records, whose SHA-256 is sent_sha256 (over each record, in order: its size as 8 bytes
-- big-endian, then its bytes as kept; a record over the size limit is kept to its first
-- 64 KiB, and a framing fault is kept empty). A retry must send those same records first
-- (they may reach the repository whether or not the first attempt committed them), else it
-- is refused (409).
ALTER TABLE http_push_requests
    ADD COLUMN sent_records BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sent_sha256  BYTEA;
