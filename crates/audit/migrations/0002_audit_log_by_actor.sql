-- A user's recent entries of one kind (their real-data failures within the hour, counted before
-- each real-data query) are found without reading the whole log.
CREATE INDEX audit_log_by_actor ON audit_log (actor, action, at);
