-- The audit log: append-only, one row per action. Each entry's hash covers its content and
-- the previous entry's hash; the MAC (audit key, derived from the custodian key) covers the
-- hash. The head (last seq, hash, MAC) is also written to an anchor file outside the database.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    prev_hash  TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    mac        TEXT   NOT NULL
);
