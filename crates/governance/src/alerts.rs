//! Monitoring with alert rules over the audit log (`policies/alerts.toml`): after each of a
//! user's queries and failed sign-ins their recent entries are counted per rule; a rule fires
//! once per window when the count reaches its threshold. The alert is logged, custodians are
//! notified, and a rule may suspend the user pending review (suspension and reinstatement are
//! audited; a suspended user neither signs in nor passes authorisation).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use niji_audit::Entry;
use serde::{Deserialize, Serialize};

use crate::{Action, GovernanceError, Platform, UserRole};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Refused,
    Differencing,
    NearIdentical,
    OutsideHours,
    Held,
    SigninFailed,
}

impl AlertKind {
    /// The audit action the kind counts.
    fn action(self) -> &'static str {
        match self {
            AlertKind::SigninFailed => "signin",
            _ => "query",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub kind: AlertKind,
    pub window_minutes: u64,
    pub threshold: u64,
    #[serde(default)]
    pub suspend: bool,
    /// Working hours in Japan time, `"HH-HH"` (for `outside_hours`).
    #[serde(default)]
    pub hours: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertPolicy {
    #[serde(default)]
    pub rule: Vec<AlertRule>,
}

/// An alert raised for a user.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub rule: String,
    pub user: String,
    pub count: u64,
    pub window_minutes: u64,
    pub suspended: bool,
}

impl AlertPolicy {
    pub fn load(path: &Path) -> Result<Self, GovernanceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GovernanceError::Files(path.to_path_buf(), e))?;
        let policy: Self = toml::from_str(&text)
            .map_err(|e| GovernanceError::Spec(format!("{}: {e}", path.display())))?;
        for r in &policy.rule {
            if r.threshold == 0 || r.window_minutes == 0 {
                return Err(GovernanceError::Spec(format!(
                    "{}: rule {:?} needs a threshold and a window of at least 1",
                    path.display(),
                    r.name
                )));
            }
            if r.kind == AlertKind::OutsideHours && hours(r).is_none() {
                return Err(GovernanceError::Spec(format!(
                    "{}: rule {:?} needs hours = \"HH-HH\"",
                    path.display(),
                    r.name
                )));
            }
        }
        Ok(policy)
    }
}

fn hours(rule: &AlertRule) -> Option<(u32, u32)> {
    let (from, to) = rule.hours.as_deref()?.split_once('-')?;
    let (from, to): (u32, u32) = (from.trim().parse().ok()?, to.trim().parse().ok()?);
    (from < to && to <= 24).then_some((from, to))
}

/// The hour of a platform timestamp in Japan time (UTC+9).
fn hour_in_japan(at: &str) -> Option<u32> {
    let utc: u32 = at.get(11..13)?.parse().ok()?;
    Some((utc + 9) % 24)
}

/// SQL up to numbers, quoted values and spacing: what near-identical queries share.
fn shape(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_quote = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                out.push('?');
            }
            _ if in_quote => {}
            c if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            c if c.is_whitespace() => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

fn detail(e: &Entry) -> serde_json::Value {
    serde_json::from_str(&e.detail).unwrap_or_default()
}

fn count(rule: &AlertRule, entries: &[Entry]) -> u64 {
    let real = |d: &serde_json::Value| d["mode"] == "real";
    match rule.kind {
        // Refused queries or refused sign-ins: the kind's action says which entries these are.
        AlertKind::Refused | AlertKind::SigninFailed => entries
            .iter()
            .filter(|e| detail(e)["outcome"] == "refused")
            .count() as u64,
        AlertKind::Held => entries
            .iter()
            .map(detail)
            .filter(|d| real(d) && d["outcome"] == "held")
            .count() as u64,
        // Queries, not cells: one large benign table may mask many cells for differencing; an
        // attack asks again and again.
        AlertKind::Differencing => entries
            .iter()
            .filter(|e| detail(e)["differencing"].as_u64().unwrap_or(0) > 0)
            .count() as u64,
        AlertKind::NearIdentical => {
            let mut shapes: HashMap<String, u64> = HashMap::new();
            for d in entries.iter().map(detail).filter(real) {
                *shapes
                    .entry(shape(d["sql"].as_str().unwrap_or("")))
                    .or_default() += 1;
            }
            shapes.into_values().max().unwrap_or(0)
        }
        AlertKind::OutsideHours => {
            let Some((from, to)) = hours(rule) else {
                return 0;
            };
            entries
                .iter()
                .filter_map(|e| hour_in_japan(&e.at))
                .filter(|h| *h < from || *h >= to)
                .count() as u64
        }
    }
}

impl Platform {
    /// Counts `user`'s recent entries against every rule and raises what reaches its
    /// threshold (once per window); returns the alerts raised now.
    pub async fn watch(&self, user: &str) -> Result<Vec<Alert>, GovernanceError> {
        let now = SystemTime::now();
        let since = |minutes: u64| niji_audit::rfc3339(now - Duration::from_secs(minutes * 60));
        // One read of the log per action, over the longest window of its rules: this runs
        // after every query.
        let mut read: HashMap<&str, Vec<Entry>> = HashMap::new();
        for rule in &self.alerts.rule {
            let action = rule.kind.action();
            if read.contains_key(action) {
                continue;
            }
            let longest = self
                .alerts
                .rule
                .iter()
                .filter(|r| r.kind.action() == action)
                .map(|r| r.window_minutes)
                .max()
                .unwrap_or(rule.window_minutes);
            let entries = self
                .audit()
                .entries_since(Some(user), action, &since(longest), None)
                .await?;
            read.insert(action, entries);
        }
        let mut raised = Vec::new();
        for rule in &self.alerts.rule {
            let since = since(rule.window_minutes);
            let all = read
                .get(rule.kind.action())
                .map(Vec::as_slice)
                .unwrap_or_default();
            // Entries come in log order, so those within this rule's window are a suffix.
            let start = all.partition_point(|e| e.at < since);
            let n = count(rule, &all[start..]);
            if n < rule.threshold {
                continue;
            }
            let marker = serde_json::json!({"rule": rule.name, "user": user}).to_string();
            let marker = marker.trim_start_matches('{').trim_end_matches('}');
            let already = self
                .audit()
                .entries_since(Some("niji"), "alert", &since, Some(marker))
                .await?;
            if !already.is_empty() {
                continue;
            }
            let alert = Alert {
                rule: rule.name.clone(),
                user: user.to_string(),
                count: n,
                window_minutes: rule.window_minutes,
                suspended: rule.suspend,
            };
            tracing::warn!(rule = %rule.name, count = n, "alert raised");
            self.audited("niji", "alert", &alert).await?;
            let custodians = self.users_with(UserRole::Custodian).await?;
            let message = format!(
                "alert {:?}: {user} reached {n} within {} minutes{}",
                rule.name,
                rule.window_minutes,
                if rule.suspend {
                    "; suspended pending review"
                } else {
                    ""
                }
            );
            self.db()
                .notify(&custodians, None, "alert", &message)
                .await?;
            if rule.suspend {
                self.set_suspended("niji", user, true, &format!("alert {:?}", rule.name))
                    .await?;
            }
            raised.push(alert);
        }
        Ok(raised)
    }

    /// Suspends a user pending review (a custodian or an administrator).
    pub async fn suspend_user(
        &self,
        actor: &str,
        user: &str,
        reason: &str,
    ) -> Result<(), GovernanceError> {
        self.may(actor, Action::SuspendUsers, "suspend users")
            .await?;
        self.set_suspended(actor, user, true, reason).await
    }

    /// Lifts a suspension after review.
    pub async fn reinstate_user(
        &self,
        actor: &str,
        user: &str,
        reason: &str,
    ) -> Result<(), GovernanceError> {
        self.may(actor, Action::SuspendUsers, "reinstate users")
            .await?;
        self.set_suspended(actor, user, false, reason).await
    }

    async fn set_suspended(
        &self,
        actor: &str,
        user: &str,
        suspended: bool,
        reason: &str,
    ) -> Result<(), GovernanceError> {
        if !self.db().set_disabled(user, suspended).await? {
            return Err(GovernanceError::NotFound(format!("user {user}")));
        }
        self.reload_authz().await?;
        let action = if suspended {
            "user.suspend"
        } else {
            "user.reinstate"
        };
        let detail = serde_json::json!({"user": user, "reason": reason});
        self.audited(actor, action, &detail).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_identical_queries_share_a_shape() {
        assert_eq!(
            shape("SELECT count(*) FROM t WHERE x = 12"),
            shape("select  count(*) from t where x = 4071")
        );
        assert_eq!(
            shape("SELECT 1 FROM t WHERE p = 'a'"),
            shape("SELECT 2 FROM t WHERE p = 'zz'")
        );
        assert_ne!(shape("SELECT a FROM t"), shape("SELECT b FROM t"));
    }

    #[test]
    fn japan_time_is_utc_plus_nine() {
        assert_eq!(hour_in_japan("2026-12-06T14:00:00.000Z"), Some(23));
        assert_eq!(hour_in_japan("2026-12-06T00:30:00.000Z"), Some(9));
    }
}
