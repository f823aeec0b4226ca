//! The chair's conditions of approval and how a signed decision compiles into the project:
//! conditions only ever narrow what was asked (fewer columns, fewer databases, a stricter
//! cell minimum, a shorter duration), never widen it.

use std::collections::{BTreeMap, BTreeSet};

use niji_pseudo::CivilDate;
use serde::{Deserialize, Serialize};

use crate::spec::Problems;
use crate::{ApplicationForm, FieldError, ProjectSpec};

/// Per-database sub-decision (one application, several data holders' experts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseDecision {
    Approved,
    Rejected,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Per table (`db.table`), the columns that remain; tables not named keep what was asked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, Vec<String>>,
    /// Databases not approved lose their tables and their linkage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub databases: BTreeMap<String, DatabaseDecision>,
    /// Persons a released cell must rest on, when stricter than the policy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_persons: Option<u64>,
    /// A shorter duration than asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_months: Option<u32>,
    /// Conditions in words, which the applicant accepts with the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// What makes these conditions impossible for `form`: every one must narrow it.
    pub fn problems(&self, form: &ApplicationForm) -> Vec<FieldError> {
        let mut out = Problems::default();
        let asked: BTreeMap<&str, &Vec<String>> = form
            .tables
            .iter()
            .map(|t| (t.table.as_str(), &t.columns))
            .collect();
        for (table, kept) in &self.columns {
            let field = format!("conditions.columns.{table}");
            match asked.get(table.as_str()) {
                None => out.add(&field, format!("{table} was not asked for")),
                Some(cols) => {
                    if kept.is_empty() {
                        out.add(&field, "keep at least one column, or reject the database");
                    }
                    for c in kept.iter().filter(|c| !cols.contains(c)) {
                        out.add(
                            &field,
                            format!("{c} was not asked for; conditions only narrow"),
                        );
                    }
                }
            }
        }
        let databases = form.databases();
        for db in self.databases.keys().filter(|db| !databases.contains(*db)) {
            out.add(
                &format!("conditions.databases.{db}"),
                "this database was not asked for",
            );
        }
        let approved: BTreeSet<&String> = databases
            .iter()
            .filter(|db| self.databases.get(*db) != Some(&DatabaseDecision::Rejected))
            .collect();
        if approved.is_empty() {
            out.add(
                "conditions.databases",
                "no database is left: reject the application instead",
            );
        }
        if let Some(cohort) = &form.cohort {
            let source_db = cohort.source.split('.').next().unwrap_or_default();
            if self.databases.get(source_db) == Some(&DatabaseDecision::Rejected) {
                out.add(
                    "conditions.databases",
                    format!("{source_db} defines the cohort; without it the rows would widen"),
                );
            }
        }
        if self.min_persons == Some(0) {
            out.add("conditions.min_persons", "at least 1");
        }
        if let Some(months) = self.duration_months
            && (months == 0 || months > form.duration_months)
        {
            out.add(
                "conditions.duration_months",
                format!("1 to the {} months asked", form.duration_months),
            );
        }
        for (i, n) in self.notes.iter().enumerate() {
            if n.trim().is_empty() || n.chars().count() > 2_000 {
                out.add(&format!("conditions.notes[{i}]"), "1-2000 characters");
            }
        }
        out.0
    }

    /// The project an approval of `form` under these conditions grants, live from `start`.
    pub fn compile(&self, form: &ApplicationForm, start: CivilDate) -> ProjectSpec {
        let rejected = |table: &str| {
            let db = table.split('.').next().unwrap_or_default();
            self.databases.get(db) == Some(&DatabaseDecision::Rejected)
        };
        let months = self.duration_months.unwrap_or(form.duration_months);
        let mut spec = form.to_spec(&last_day(start, months).to_string());
        spec.tables.retain(|t| !rejected(&t.table));
        for t in &mut spec.tables {
            if let Some(kept) = self.columns.get(&t.table) {
                t.columns.retain(|c| kept.contains(c));
            }
        }
        for group in &mut spec.linkage {
            group.retain(|db| self.databases.get(db) != Some(&DatabaseDecision::Rejected));
        }
        spec.linkage.retain(|g| g.len() >= 2);
        spec.min_persons = self.min_persons;
        spec
    }
}

/// The last day of a run of `months` months starting on `start` (start + months − 1 day; a
/// month-end start stays at month ends).
pub fn last_day(start: CivilDate, months: u32) -> CivilDate {
    let total = start.year * 12 + (start.month as i32 - 1) + months as i32;
    let (year, month) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    let first_of_next = CivilDate {
        year,
        month,
        day: 1,
    };
    let days_in = |y: i32, m: u32| {
        let next = if m == 12 {
            CivilDate {
                year: y + 1,
                month: 1,
                day: 1,
            }
        } else {
            CivilDate {
                year: y,
                month: m + 1,
                day: 1,
            }
        };
        (next.days_since_epoch()
            - CivilDate {
                year: y,
                month: m,
                day: 1,
            }
            .days_since_epoch()) as u32
    };
    let day = start.day.min(days_in(year, month));
    let same_day = first_of_next.days_since_epoch() + day as i32 - 1;
    CivilDate::from_days_since_epoch(same_day - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> CivilDate {
        CivilDate::new(y, m, day).expect("date")
    }

    #[test]
    fn a_run_of_months_ends_the_day_before_the_same_date() {
        assert_eq!(last_day(d(2026, 12, 7), 12), d(2027, 12, 6));
        assert_eq!(last_day(d(2026, 1, 1), 1), d(2026, 1, 31));
        assert_eq!(last_day(d(2026, 1, 31), 1), d(2026, 2, 27));
        assert_eq!(last_day(d(2027, 11, 15), 3), d(2028, 2, 14));
    }
}
