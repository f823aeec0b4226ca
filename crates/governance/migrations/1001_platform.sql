-- Platform state kept by governance: users (with the SHA-256 of their API token, never the
-- token), projects (the approved spec as JSON) and their members. Application review writes
-- the same rows. Every migration is written in the SQL that SQLite and PostgreSQL both accept:
-- TEXT, BIGINT, no autoincrement, no BOOLEAN, no reserved word as a column name.
CREATE TABLE users (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    disabled    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    spec        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    expires     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    closed_at   TEXT
);

CREATE TABLE project_members (
    project     TEXT NOT NULL REFERENCES projects(id),
    member      TEXT NOT NULL REFERENCES users(name),
    role        TEXT NOT NULL,
    PRIMARY KEY (project, member)
);
