-- Credit repair (信用修复, hub/src/credit/repair.rs): an application, filed by the department
-- that listed an entry (a black-list entry, a penalty's publication) on its subject's behalf,
-- with the documents the dataset's `[repair]` rule asks for; decided by the dataset's owning
-- department, by another person than the applicant, before `decide_by`. An approved repair
-- takes the entry out of publication and out of the joint-discipline check; the entry stays
-- in the repository, marked repaired. One application per entry may be pending or approved.
CREATE TABLE credit_repairs (
    id                BIGSERIAL PRIMARY KEY,
    dataset           TEXT NOT NULL REFERENCES datasets (id),
    entry             TEXT NOT NULL,
    applicant         TEXT NOT NULL,
    applicant_person  TEXT NOT NULL CHECK (applicant_person <> ''),
    reason            TEXT NOT NULL CHECK (reason <> ''),
    documents         JSONB NOT NULL,
    applied_at        TIMESTAMPTZ NOT NULL,
    decide_by         TIMESTAMPTZ NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    decided_by        TEXT,
    decider_person    TEXT,
    decision_reason   TEXT,
    decided_at        TIMESTAMPTZ,
    CHECK ((state = 'pending') = (decided_at IS NULL))
);

CREATE UNIQUE INDEX credit_repairs_one_open_per_entry ON credit_repairs (dataset, entry)
    WHERE state IN ('pending', 'approved');
