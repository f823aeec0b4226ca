-- Standard datasets (決められたデータセット): one build per data version, identical for every
-- requester; organisations approved for them; requests on a short form with one sign-off.
CREATE TABLE dataset_versions (
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    built_at        TEXT NOT NULL,
    built_by        TEXT NOT NULL,
    rows_released   BIGINT NOT NULL,
    cells_masked    BIGINT NOT NULL,
    parquet_sha256  TEXT NOT NULL,
    csv_sha256      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

-- Datasets the custodian opened to every approved organisation (no sign-off needed).
CREATE TABLE dataset_openings (
    name       TEXT PRIMARY KEY,
    opened_by  TEXT NOT NULL,
    opened_at  TEXT NOT NULL
);

-- Organisations the custodian approved to request standard datasets.
CREATE TABLE dataset_organisations (
    organisation  TEXT PRIMARY KEY REFERENCES organisations(id),
    approved_by   TEXT NOT NULL,
    approved_at   TEXT NOT NULL
);

CREATE TABLE dataset_requests (
    id               TEXT PRIMARY KEY,
    number           BIGINT NOT NULL UNIQUE,
    dataset          TEXT NOT NULL,
    requester        TEXT NOT NULL REFERENCES users(name),
    organisation     TEXT NOT NULL REFERENCES organisations(id),
    purpose          TEXT NOT NULL,
    public_interest  TEXT NOT NULL,
    submitted_at     TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('submitted', 'granted', 'refused')),
    decided_by       TEXT,
    decided_at       TEXT,
    reason           TEXT,
    -- Last day (inclusive) a granted request may download, YYYY-MM-DD.
    expires          TEXT
);
CREATE INDEX dataset_requests_requester ON dataset_requests (requester, dataset);

-- Released person sets are kept per scope now, not only per project: a standard dataset's
-- ledger (`standard:<name>`) spans its versions, so that a new version's cells are checked
-- for differencing against the cells every requester already holds. The table is rebuilt
-- without the reference to projects (SQLite cannot drop a constraint in place).
CREATE TABLE released_sets_by_scope (
    id          BIGINT PRIMARY KEY,
    project     TEXT NOT NULL,
    query_id    TEXT NOT NULL,
    persons     TEXT NOT NULL,
    released_at TEXT NOT NULL
);
INSERT INTO released_sets_by_scope (id, project, query_id, persons, released_at)
    SELECT id, project, query_id, persons, released_at FROM released_sets;
DROP TABLE released_sets;
ALTER TABLE released_sets_by_scope RENAME TO released_sets;
CREATE INDEX released_sets_project ON released_sets (project);
