-- Consent withdrawals (同意撤回) of the consent-based databases (難病DB, 小慢DB), by the
-- registration's 研究用ID: never the name, birth date or consent number it was computed from.
-- Append-only: a withdrawal is not undone (consenting again is a new registration).
CREATE TABLE consent_withdrawals (
    id            BIGINT PRIMARY KEY,
    database_name TEXT NOT NULL,
    research_id   TEXT NOT NULL UNIQUE,
    matched_rows  BIGINT NOT NULL,
    recorded_by   TEXT NOT NULL,
    recorded_at   TEXT NOT NULL
);
