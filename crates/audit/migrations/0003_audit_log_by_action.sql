-- The audit screen filters by action (alerts, refusals) newest first: without this index
-- such a page walks the whole log.
CREATE INDEX audit_log_by_action ON audit_log (action, seq);
