-- Applications and their review: one window for every database. The form is JSON (what the
-- applicant filled in, checked against the catalog); each submission is kept as a version, so
-- that votes and decisions refer to exactly what reviewers read. Timestamps are the platform's
-- RFC 3339 text; dates (due dates) are YYYY-MM-DD. Written in the SQL SQLite and PostgreSQL share.
CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

ALTER TABLE users ADD COLUMN organisation TEXT REFERENCES organisations(id);

CREATE TABLE applications (
    id                 TEXT PRIMARY KEY,
    -- Allocation order under the table lock, so ids are dense per platform.
    number             BIGINT NOT NULL UNIQUE,
    kind               TEXT NOT NULL CHECK (kind IN ('new', 'amendment')),
    -- The project an amendment changes; for a new application, the project it became.
    project            TEXT,
    applicant          TEXT NOT NULL REFERENCES users(name),
    organisation       TEXT NOT NULL REFERENCES organisations(id),
    title              TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('draft', 'submitted', 'under_review',
                           'revision_requested', 'approved', 'rejected', 'active', 'expired',
                           'closed', 'withdrawn')),
    form               TEXT NOT NULL,
    -- Submitted versions so far (0 while a first draft).
    version            BIGINT NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    first_submitted_at TEXT,
    submitted_at       TEXT,
    review_started_at  TEXT,
    decided_at         TEXT,
    responded_at       TEXT,
    activated_at       TEXT,
    -- The current phase's due date, in working days from its start.
    due_on             TEXT
);
CREATE INDEX applications_by_state ON applications (state, due_on);
CREATE INDEX applications_by_applicant ON applications (applicant, updated_at);
CREATE INDEX applications_by_organisation ON applications (organisation);

CREATE TABLE application_versions (
    application   TEXT NOT NULL REFERENCES applications(id),
    version       BIGINT NOT NULL,
    form          TEXT NOT NULL,
    submitted_at  TEXT NOT NULL,
    PRIMARY KEY (application, version)
);

-- Reviewers the chair assigned, with the databases they review as experts. A conflict of
-- interest (declared, or the applicant's organisation found automatically) recuses them.
CREATE TABLE review_assignments (
    application  TEXT NOT NULL REFERENCES applications(id),
    reviewer     TEXT NOT NULL REFERENCES users(name),
    databases    TEXT NOT NULL,
    assigned_by  TEXT NOT NULL REFERENCES users(name),
    assigned_at  TEXT NOT NULL,
    conflict     TEXT,
    PRIMARY KEY (application, reviewer)
);
CREATE INDEX review_assignments_by_reviewer ON review_assignments (reviewer);

CREATE TABLE review_votes (
    application  TEXT NOT NULL REFERENCES applications(id),
    version      BIGINT NOT NULL,
    reviewer     TEXT NOT NULL REFERENCES users(name),
    vote         TEXT NOT NULL CHECK (vote IN ('approve', 'approve_with_conditions', 'revise', 'reject')),
    -- Comments per section of the form, JSON.
    comments     TEXT NOT NULL,
    voted_at     TEXT NOT NULL,
    PRIMARY KEY (application, version, reviewer)
);

CREATE TABLE review_decisions (
    application  TEXT NOT NULL REFERENCES applications(id),
    version      BIGINT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('approved', 'revision_requested', 'rejected')),
    conditions   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    signed_by    TEXT NOT NULL REFERENCES users(name),
    signed_at    TEXT NOT NULL,
    PRIMARY KEY (application, version)
);

-- What a user is told: every change addressed to them, kept until read (and after).
CREATE TABLE notifications (
    id           BIGINT PRIMARY KEY,
    recipient    TEXT NOT NULL REFERENCES users(name),
    application  TEXT REFERENCES applications(id),
    kind         TEXT NOT NULL,
    message      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    read_at      TEXT
);
CREATE INDEX notifications_by_recipient ON notifications (recipient, id);
