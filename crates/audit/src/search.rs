//! Reading the log with filters, newest first, a page at a time: what the custodian's audit
//! screen and a project's own trail show.

use serde::Deserialize;

use crate::{AuditError, AuditLog, Entry};

/// What to look for; every field narrows, none given means every entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Text the entry's detail contains (LIKE's wildcards match only themselves).
    pub contains: Option<String>,
    /// From this day on (`YYYY-MM-DD`), in the platform's time (UTC).
    pub from: Option<String>,
    /// Up to and including this day.
    pub to: Option<String>,
    /// Entries before this sequence number (the next page).
    pub before: Option<i64>,
}

fn like_pattern(needle: &str) -> String {
    let escaped = needle
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn given(v: &Option<String>) -> String {
    v.as_deref().map(str::trim).unwrap_or_default().to_string()
}

impl AuditLog {
    /// At most `limit` entries matching `filter`, newest first.
    pub async fn search(&self, filter: &Filter, limit: i64) -> Result<Vec<Entry>, AuditError> {
        let contains = given(&filter.contains);
        let to = given(&filter.to);
        // The day's last timestamp sorts before the next day's first.
        let to = if to.is_empty() {
            to
        } else {
            format!("{to}T99")
        };
        Ok(sqlx::query_as(
            "SELECT seq, at, actor, action, detail, prev_hash, hash, mac FROM audit_log \
             WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR action = $2) \
             AND ($3 = '' OR detail LIKE $3 ESCAPE '\\') AND ($4 = '' OR at >= $4) \
             AND ($5 = '' OR at <= $5) AND seq < $6 ORDER BY seq DESC LIMIT $7",
        )
        .bind(given(&filter.actor))
        .bind(given(&filter.action))
        .bind(if contains.is_empty() {
            contains
        } else {
            like_pattern(&contains)
        })
        .bind(given(&filter.from))
        .bind(to)
        .bind(filter.before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
    }
}
