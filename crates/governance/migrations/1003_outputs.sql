-- Real-data results that did not leave whole: held (中間生成物) or released with masked cells.
-- The result itself is a Parquet file in the project's directory; here are its SQL, author,
-- findings and review. A researcher may ask for release with a justification; output checkers
-- vote, every vote kept here and in the audit log.
CREATE TABLE outputs (
    id            TEXT PRIMARY KEY,
    project       TEXT NOT NULL REFERENCES projects(id),
    author        TEXT NOT NULL REFERENCES users(name),
    sql           TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('held', 'suppressed')),
    findings      TEXT NOT NULL,
    rows          BIGINT NOT NULL,
    review        TEXT NOT NULL DEFAULT 'none'
                  CHECK (review IN ('none', 'requested', 'released', 'rejected')),
    justification TEXT,
    released      TEXT,
    created_at    TEXT NOT NULL,
    requested_at  TEXT,
    decided_at    TEXT
);
CREATE INDEX outputs_project ON outputs (project);
CREATE INDEX outputs_review ON outputs (review);

CREATE TABLE output_votes (
    output    TEXT NOT NULL REFERENCES outputs(id),
    checker   TEXT NOT NULL REFERENCES users(name),
    vote      TEXT NOT NULL CHECK (vote IN ('approve', 'reject')),
    reason    TEXT NOT NULL,
    voted_at  TEXT NOT NULL,
    PRIMARY KEY (output, checker)
);
