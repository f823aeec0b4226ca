//! Reading the log with filters, newest first, a page at a time: what the custodian's audit
//! screen and a project's own trail show.

use serde::Deserialize;

use crate::{AuditError, AuditLog, Entry};

/// What to look for; every field narrows, none given means every entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Text the entry's detail contains, as typed (no wildcards).
    pub contains: Option<String>,
    /// From this day on (`YYYY-MM-DD`), in the platform's time (UTC).
    pub from: Option<String>,
    /// Up to and including this day.
    pub to: Option<String>,
    /// Entries before this sequence number (the next page).
    pub before: Option<i64>,
}

fn given(v: &Option<String>) -> String {
    v.as_deref().map(str::trim).unwrap_or_default().to_string()
}

impl AuditLog {
    /// At most `limit` entries matching `filter`, newest first. Only the filters given become
    /// conditions, so that the indexes on actor and on action serve them.
    pub async fn search(&self, filter: &Filter, limit: i64) -> Result<Vec<Entry>, AuditError> {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        let mut add = |condition: &str, value: String| {
            values.push(value);
            conditions.push(condition.replace('?', &format!("${}", values.len())));
        };
        let actor = given(&filter.actor);
        if !actor.is_empty() {
            add("actor = ?", actor);
        }
        let action = given(&filter.action);
        if !action.is_empty() {
            add("action = ?", action);
        }
        let contains = given(&filter.contains);
        if !contains.is_empty() {
            // A plain substring search (case as typed): a byte search is several times faster
            // than LIKE on SQLite, and the detail is JSON, not prose.
            let find = match self.db.backend() {
                crate::Backend::Sqlite => "instr(detail, ?) > 0",
                crate::Backend::Postgres => "strpos(detail, ?) > 0",
            };
            add(find, contains);
        }
        let from = given(&filter.from);
        if !from.is_empty() {
            add("at >= ?", from);
        }
        let to = given(&filter.to);
        if !to.is_empty() {
            // The day's last timestamp sorts before the next day's first.
            add("at <= ?", format!("{to}T99"));
        }
        let n = values.len();
        conditions.push(format!("seq < ${}", n + 1));
        let sql = format!(
            "SELECT seq, at, actor, action, detail, prev_hash, hash, mac FROM audit_log WHERE {} ORDER BY seq DESC LIMIT ${}",
            conditions.join(" AND "),
            n + 2
        );
        // Built from the fixed conditions above; every value is a bound parameter.
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for v in values {
            query = query.bind(v);
        }
        Ok(query
            .bind(filter.before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?)
    }
}
