-- The registry: the city's departments and the datasets they publish.
-- Both are declared in schemas/ and loaded (upserted) at every start; the database copy is
-- what queries, foreign keys and the catalogue use.

CREATE TABLE departments (
    code         TEXT PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9-]{1,31}$'),
    name_zh      TEXT NOT NULL,
    name_en      TEXT NOT NULL,
    credit_code  TEXT NOT NULL UNIQUE CHECK (credit_code ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'),
    loaded_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE datasets (
    id               TEXT PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9-]{1,62}$'),
    department       TEXT NOT NULL REFERENCES departments (code),
    title_zh         TEXT NOT NULL,
    title_en         TEXT NOT NULL,
    description      TEXT NOT NULL,
    primary_key      TEXT[] NOT NULL CHECK (cardinality(primary_key) > 0),
    schema_version   INTEGER NOT NULL CHECK (schema_version > 0),
    schema           JSONB NOT NULL,
    pii              JSONB NOT NULL DEFAULT '{}'::jsonb,
    sharing          TEXT NOT NULL CHECK (sharing IN ('unconditional', 'conditional', 'not-shared')),
    update_interval  INTERVAL NOT NULL,
    loaded_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX datasets_department ON datasets (department);
