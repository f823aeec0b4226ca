//! Feasibility counts on the platform side (`policies/feasibility.toml`): who may count (an
//! analyst or researcher of an organisation approved for standard datasets), the quotas per
//! user and per organisation, and the lockout of a user whose counts keep being withheld for
//! differencing. Quotas and lockout are counted from the audit log, where every count is.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::{Action, GovernanceError, Platform};

/// The audit action of a count.
pub const FEASIBILITY_COUNT: &str = "feasibility.count";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeasibilityPolicy {
    /// Counts of 10 or more are rounded to a multiple of this (1: not rounded).
    pub rounding: u64,
    pub per_minute: u32,
    pub per_week: u32,
    pub per_organisation_week: u32,
    /// Withheld-for-differencing answers within the window that lock a user out.
    pub lockout_after: u32,
    pub lockout_window_hours: u32,
}

impl FeasibilityPolicy {
    pub fn load(path: &Path) -> Result<Self, GovernanceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GovernanceError::Files(path.to_path_buf(), e))?;
        let policy: Self = toml::from_str(&text)
            .map_err(|e| GovernanceError::Spec(format!("{}: {e}", path.display())))?;
        let zero = [
            policy.rounding,
            u64::from(policy.per_minute),
            u64::from(policy.per_week),
            u64::from(policy.per_organisation_week),
            u64::from(policy.lockout_after),
            u64::from(policy.lockout_window_hours),
        ]
        .contains(&0);
        if zero {
            return Err(GovernanceError::Spec(format!(
                "{}: every setting is at least 1",
                path.display()
            )));
        }
        Ok(policy)
    }

    /// `n` as shown: under 10 as "<10", else rounded half up to a multiple of `rounding`.
    pub fn shown(&self, n: u64, min_persons: u64) -> String {
        if n < min_persons {
            return format!("<{min_persons}");
        }
        let r = self.rounding;
        ((n + r / 2) / r * r).to_string()
    }
}

fn ago(seconds: u64) -> String {
    niji_audit::rfc3339(SystemTime::now() - Duration::from_secs(seconds))
}

impl Platform {
    pub fn feasibility_policy(&self) -> &FeasibilityPolicy {
        &self.feasibility
    }

    /// The organisation `actor` counts for, if they may count now: the permission, an
    /// organisation approved for standard datasets, the quotas and the lockout. Each refusal
    /// is logged.
    pub async fn may_count(&self, actor: &str) -> Result<String, GovernanceError> {
        self.may(actor, Action::CountFeasibility, "run feasibility counts")
            .await?;
        let organisation = self.db().organisation_of(actor).await?.ok_or_else(|| {
            GovernanceError::Refused(
                "counts are made for an organisation; you belong to none".into(),
            )
        })?;
        let approved: Option<String> = sqlx::query_scalar(
            "SELECT organisation FROM dataset_organisations WHERE organisation = $1",
        )
        .bind(&organisation)
        .fetch_optional(self.db().pool())
        .await?;
        let p = &self.feasibility;
        let mine = |since: String, needle: Option<&'static str>| async move {
            self.audit()
                .entries_since(Some(actor), FEASIBILITY_COUNT, &since, needle)
                .await
                .map(|e| e.len())
        };
        let week = 7 * 24 * 3600;
        let refusal = if approved.is_none() {
            Some(format!(
                "{organisation} is not approved for standard datasets and counts"
            ))
        } else if mine(
            ago(p.lockout_window_hours as u64 * 3600),
            Some("\"differencing\":true"),
        )
        .await?
            >= p.lockout_after as usize
        {
            Some(format!(
                "locked out: {} of your counts in {} h were withheld as too close to earlier ones",
                p.lockout_after, p.lockout_window_hours
            ))
        } else if mine(ago(60), None).await? >= p.per_minute as usize {
            Some(format!("quota: {} counts a minute", p.per_minute))
        } else if mine(ago(week), None).await? >= p.per_week as usize {
            Some(format!("quota: {} counts a week", p.per_week))
        } else {
            let needle = format!(
                "\"organisation\":{}",
                serde_json::Value::from(organisation.as_str())
            );
            let theirs = self
                .audit()
                .entries_since(None, FEASIBILITY_COUNT, &ago(week), Some(&needle))
                .await?
                .len();
            (theirs >= p.per_organisation_week as usize).then(|| {
                format!(
                    "quota: {} counts a week for {organisation}",
                    p.per_organisation_week
                )
            })
        };
        if let Some(why) = refusal {
            let detail = serde_json::json!({ "attempted": "count" });
            return Err(self
                .refusal(actor, detail, GovernanceError::Denied(why))
                .await);
        }
        Ok(organisation)
    }

    /// Whether `actor` belongs to `organisation` and may count: what the chokepoint checks
    /// for a count's scope (quotas were checked by [`Self::may_count`] before).
    pub async fn counts_for(
        &self,
        actor: &str,
        organisation: &str,
    ) -> Result<bool, GovernanceError> {
        Ok(self.allows(actor, "", Action::CountFeasibility).await
            && self.db().organisation_of(actor).await?.as_deref() == Some(organisation))
    }
}
