//! Feasibility counts: how many patients with a disease, optionally at a severity, an age, in
//! a prefecture, in a fiscal year. A count is structured, not SQL: it compiles to one
//! aggregate over fixed 難病DB views and runs through the chokepoint in its organisation's
//! scope, so the guard, the views (consent withdrawals applied), the disclosure rules and the
//! organisation's release ledger apply as to any query. Quotas and the lockout are the
//! platform's (`policies/feasibility.toml`); every count is audited with what it showed.

use niji_governance::{ApprovedTable, FEASIBILITY_COUNT, ProjectSpec};
use serde::{Deserialize, Serialize};

use crate::{Mode, QueryRequest, SandboxError, Scope, Status, Visiting};

/// A count's conditions. Ranges are inclusive; what is left out is not restricted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// 告示番号.
    pub disease_no: u16,
    pub fiscal_year: u16,
    #[serde(default)]
    pub severity_from: Option<u8>,
    #[serde(default)]
    pub severity_to: Option<u8>,
    /// Age reached in the calendar year the fiscal year starts.
    #[serde(default)]
    pub age_from: Option<u8>,
    #[serde(default)]
    pub age_to: Option<u8>,
    /// Prefecture code, `01`–`47`.
    #[serde(default)]
    pub prefecture: Option<String>,
    /// Only patients certified for the first time that year (新規).
    #[serde(default)]
    pub new_only: bool,
}

/// What a count shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CountAnswer {
    pub query_id: String,
    /// Rounded patients (`1230`), `<10`, or `withheld` (too close to an earlier count of the
    /// organisation's: shown, it would tell of fewer than 10 persons).
    pub patients: String,
    pub rounded_to: u64,
}

const AGE: &str = "(s.fiscal_year - CAST(date_part('year', s.birth_date) AS INT))";

impl CountRequest {
    /// All patients of a disease in a fiscal year: no other condition.
    pub fn new(disease_no: u16, fiscal_year: u16) -> Self {
        Self {
            disease_no,
            fiscal_year,
            severity_from: None,
            severity_to: None,
            age_from: None,
            age_to: None,
            prefecture: None,
            new_only: false,
        }
    }

    /// The aggregate it compiles to. Only checked numbers and a two-digit code go in.
    fn sql(&self) -> Result<String, SandboxError> {
        let bad = |what: &str| Err(SandboxError::Refused(format!("feasibility count: {what}")));
        if !(1..=400).contains(&self.disease_no) {
            return bad("disease_no is a 告示番号");
        }
        if !(2000..=2100).contains(&self.fiscal_year) {
            return bad("fiscal_year is a year");
        }
        let mut conditions = vec![
            format!("s.disease_no = {}", self.disease_no),
            format!("s.fiscal_year = {}", self.fiscal_year),
        ];
        for (from, to, column) in [
            (self.severity_from, self.severity_to, "s.severity_stage"),
            (self.age_from, self.age_to, AGE),
        ] {
            if let (Some(f), Some(t)) = (from, to)
                && f > t
            {
                return bad("a range ends before it starts");
            }
            if let Some(f) = from {
                conditions.push(format!("{column} >= {f}"));
            }
            if let Some(t) = to {
                conditions.push(format!("{column} <= {t}"));
            }
        }
        let mut join = "";
        if let Some(p) = &self.prefecture {
            let valid = p.len() == 2
                && p.bytes().all(|b| b.is_ascii_digit())
                && (1..=47).contains(&p.parse::<u8>().unwrap_or(0));
            if !valid {
                return bad("prefecture is a code from 01 to 47");
            }
            join = " JOIN reference.municipalities m ON s.municipality = m.municipality";
            conditions.push(format!("m.prefecture = '{p}'"));
        }
        if self.new_only {
            conditions.push("s.application_kind = 1".into());
        }
        Ok(format!(
            "SELECT count(DISTINCT s.pid) AS patients FROM nanbyo.surveys s{join} WHERE {}",
            conditions.join(" AND ")
        ))
    }
}

/// The views every count reads.
fn feasibility_spec(organisation: &str) -> ProjectSpec {
    let table = |table: &str, columns: &[&str]| ApprovedTable {
        table: table.into(),
        columns: columns.iter().map(|c| (*c).to_string()).collect(),
    };
    ProjectSpec {
        id: format!("feasibility:{organisation}"),
        title: format!("feasibility counts of {organisation}"),
        expires: "9999-12-31".into(),
        tables: vec![
            table(
                "nanbyo.surveys",
                &[
                    "fiscal_year",
                    "application_kind",
                    "disease_no",
                    "severity_stage",
                    "birth_date",
                    "municipality",
                ],
            ),
            table("reference.municipalities", &["municipality", "prefecture"]),
        ],
        period: None,
        cohort: None,
        linkage: Vec::new(),
        members: Vec::new(),
        min_persons: None,
    }
}

impl Visiting {
    /// The views of a count's scope, for a user of `organisation` who may count (the
    /// quotas were checked before the count was compiled).
    pub(crate) async fn feasibility_spec(
        &self,
        user: &str,
        organisation: &str,
        mode: Mode,
    ) -> Result<ProjectSpec, SandboxError> {
        if mode != Mode::Real || !self.platform.counts_for(user, organisation).await? {
            return Err(SandboxError::Denied(format!("counts for {organisation}")));
        }
        Ok(feasibility_spec(organisation))
    }

    /// One count for `actor`: permission, organisation, quotas and lockout first; then the
    /// count through the chokepoint; then its audit entry with what it showed. Counts take
    /// turns from the quota check to their audit entry, so that a burst cannot pass the
    /// quotas on one reading of the log; and every attempt past the check is counted, whether
    /// it ended in an answer or not.
    pub async fn feasibility_count(
        &self,
        actor: &str,
        request: &CountRequest,
    ) -> Result<CountAnswer, SandboxError> {
        let _one_at_a_time = self.count_lock.lock().await;
        let organisation = self.platform.may_count(actor).await?;
        let counted = self.count_once(actor, &organisation, request).await;
        let (shown, differencing, query_id) = match &counted {
            Ok((answer, differencing)) => (
                answer.patients.clone(),
                *differencing,
                answer.query_id.clone(),
            ),
            Err(e) => (format!("not counted: {}", e.kind()), false, String::new()),
        };
        self.platform
            .audited(
                actor,
                FEASIBILITY_COUNT,
                &serde_json::json!({
                    "organisation": organisation, "query_id": query_id,
                    "request": request, "shown": shown, "differencing": differencing,
                }),
            )
            .await?;
        counted.map(|(answer, _)| answer)
    }

    /// The count itself, and whether it was withheld for differencing.
    async fn count_once(
        &self,
        actor: &str,
        organisation: &str,
        request: &CountRequest,
    ) -> Result<(CountAnswer, bool), SandboxError> {
        let sql = request.sql()?;
        let outcome = self
            .query(&QueryRequest {
                user: actor.to_string(),
                scope: Scope::feasibility(organisation),
                mode: Mode::Real,
                sql,
                via: "feasibility",
            })
            .await;
        let policy = self.platform.feasibility_policy();
        let min_persons = self.disclosure.for_databases(["nanbyo"]).min_persons;
        let differencing = outcome
            .suppressed
            .iter()
            .any(|c| niji_disclosure::is_differencing(&c.reason));
        let patients = match outcome.status {
            Status::Released => {
                let n = crate::outcome::single_count(&outcome).ok_or_else(|| {
                    SandboxError::Unavailable("a count without its one cell".into())
                })?;
                policy.shown(n, min_persons)
            }
            Status::Suppressed if differencing => "withheld".to_string(),
            Status::Suppressed => format!("<{min_persons}"),
            _ => {
                return Err(SandboxError::Refused(format!(
                    "the count could not be made (query {}): {}",
                    outcome.query_id, outcome.message
                )));
            }
        };
        let answer = CountAnswer {
            query_id: outcome.query_id,
            patients,
            rounded_to: policy.rounding,
        };
        Ok((answer, differencing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count() -> CountRequest {
        CountRequest::new(6, 2022)
    }

    #[test]
    fn only_checked_values_reach_the_sql() {
        let mut c = count();
        c.prefecture = Some("13' OR '1'='1".into());
        assert!(c.sql().is_err());
        c.prefecture = Some("48".into());
        assert!(c.sql().is_err());
        c.prefecture = Some("13".into());
        c.age_from = Some(40);
        c.age_to = Some(30);
        assert!(c.sql().is_err());
        c.age_to = Some(64);
        let sql = c.sql().unwrap_or_default();
        assert!(
            sql.contains("m.prefecture = '13'") && sql.contains("<= 64"),
            "{sql}"
        );
    }
}
