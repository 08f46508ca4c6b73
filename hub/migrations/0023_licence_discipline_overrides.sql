-- Joint discipline at issuance (hub/src/licences/discipline.rs): a licence issued although
-- an identifier of it is on a credit list its type consults, because an officer overrode the
-- refusal with a reason (only where the type's manifest allows it). Kept with the licence
-- version it let through, the entries that would have refused it, the officer and the
-- reason; `GET /api/v1/licences/{number}` and `bohai licence show` show them.
CREATE TABLE licence_discipline_overrides (
    number      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    matches     JSONB NOT NULL,
    reason      TEXT NOT NULL CHECK (reason <> ''),
    officer     TEXT NOT NULL CHECK (officer <> ''),
    actor       TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (number, version),
    FOREIGN KEY (number, version) REFERENCES licences (number, version)
);
