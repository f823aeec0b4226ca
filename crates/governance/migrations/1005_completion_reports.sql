-- The lead's completion report (利用終了報告) at close-out: what was done with the data and
-- what was published. A project approved through review closes only once its lead reported.
CREATE TABLE completion_reports (
    project       TEXT PRIMARY KEY REFERENCES projects(id),
    author        TEXT NOT NULL REFERENCES users(name),
    report        TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    submitted_at  TEXT NOT NULL
);
