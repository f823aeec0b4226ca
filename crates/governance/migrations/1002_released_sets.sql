-- Person sets of a project's released cells (serialized roaring bitmaps over the store's
-- person indexes), kept inside the platform so that disclosure control can refuse a later cell
-- that differs from a released one by fewer persons than the threshold.
CREATE TABLE released_sets (
    -- Ids are given by the writer holding the table (see PlatformDb::record_released_sets).
    id          BIGINT PRIMARY KEY,
    project     TEXT NOT NULL REFERENCES projects(id),
    query_id    TEXT NOT NULL,
    -- The bitmap in base64: one column type for SQLite and PostgreSQL.
    persons     TEXT NOT NULL,
    released_at TEXT NOT NULL
);
CREATE INDEX released_sets_project ON released_sets (project);
