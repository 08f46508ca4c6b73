-- A retry of an HTTP push cut short resumes after the records its first attempt committed:
-- it must send those same records. records_sha256 is the SHA-256 of the committed records
-- (each one's length, as 8 bytes big-endian, then its bytes, in order), stored with every
-- piece; a retry whose first `records` records hash otherwise is refused (409).
ALTER TABLE http_push_requests
    ADD COLUMN records_sha256 BYTEA;
