-- HTTP push reads its body as a stream and commits its records a piece at a time. A request
-- with an Idempotency-Key keeps its progress here with each piece: how many of its records
-- are committed and the answer so far. A retry of an unfinished request resumes after those
-- records (neither delivered nor counted twice); a retry of a finished one gets its answer if
-- its body is the same (body_sha256, kept once the request is finished), else 409.
ALTER TABLE http_push_requests
    ADD COLUMN records     BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN complete    BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN body_sha256 BYTEA;
