-- Brought-in analysis scripts (持ち込みプログラム): bundles of SQL files, checked statically
-- against their project's catalog and approved by a committee member before the project may
-- run them. A version per distinct content: a changed file needs approval again.
CREATE TABLE scripts (
    project       TEXT NOT NULL REFERENCES projects(id),
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    digest        TEXT NOT NULL,
    files         TEXT NOT NULL,
    submitted_by  TEXT NOT NULL,
    submitted_at  TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('submitted', 'approved', 'rejected')),
    decided_by    TEXT,
    decided_at    TEXT,
    reason        TEXT,
    PRIMARY KEY (project, name, version)
);
CREATE INDEX scripts_digest ON scripts (project, name, digest);
