-- The portal's sign-in: a password (argon2id PHC string: algorithm, parameters and salt in
-- one) and an optional TOTP second factor per user; web sessions kept server-side so that a
-- restart keeps them and a suspension or sign-out ends them (the cookie holds a random id, the
-- table its SHA-256); and the standard datasets a custodian published to the public dashboard.
CREATE TABLE user_passwords (
    name            TEXT PRIMARY KEY REFERENCES users(name),
    phc             TEXT NOT NULL,
    changed_at      TEXT NOT NULL,
    -- Base32 secret of a confirmed second factor; NULL when the user has none.
    totp_secret     TEXT,
    -- A secret being enrolled, until a first code from it is shown.
    totp_pending    TEXT,
    -- The last time step a code was accepted at: a code is never accepted twice.
    totp_last_step  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE web_sessions (
    digest      TEXT PRIMARY KEY,
    name        TEXT NOT NULL REFERENCES users(name),
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    ended_at    TEXT
);
CREATE INDEX web_sessions_by_user ON web_sessions (name);

CREATE TABLE dashboard_datasets (
    dataset       TEXT PRIMARY KEY,
    published_by  TEXT NOT NULL,
    published_at  TEXT NOT NULL
);
