//! The approved scope of a project, as the review committee grants it: which tables and
//! columns, which rows (data period, disease cohort), which databases may be linked, who works
//! on it and until when. Written as TOML (`niji project create --spec FILE`); application
//! review will produce the same structure.

use std::collections::BTreeSet;

use niji_catalog::{Catalog, ColumnType, Sensitivity};
use niji_pseudo::CivilDate;
use serde::{Deserialize, Serialize};

use crate::GovernanceError;

/// Name of the pseudonym column every person-level view gets.
pub use niji_catalog::PSEUDONYM_COLUMN;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    /// Lower-case letters, digits and `-`/`_`; also the name of its directories.
    pub id: String,
    pub title: String,
    /// Last day (inclusive) the project may run queries, `YYYY-MM-DD`.
    pub expires: String,
    pub tables: Vec<ApprovedTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<Cohort>,
    /// Groups of databases the committee approved for linkage by ID5. A database in no group
    /// is a group of its own: its persons get pseudonyms unrelated to any other database's.
    #[serde(default)]
    pub linkage: Vec<Vec<String>>,
    pub members: Vec<Member>,
    /// A stricter minimum of persons per released cell than the disclosure policy's, set by
    /// the committee as a condition of approval (the stricter of the two applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_persons: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovedTable {
    /// `db.table`.
    pub table: String,
    /// Approved columns by name; there is no wildcard. The pseudonym column is added to
    /// person-level tables without being listed.
    pub columns: Vec<String>,
}

/// The approved data period, months inclusive (`YYYY-MM`). Applied to every person-level
/// table through the catalog's `period_column`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub from: String,
    pub to: String,
}

/// A disease cohort: only persons with a code starting with one of `codes` in `source`
/// (`db.table.column`) within the period appear, in every approved table of its linkage group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cohort {
    pub source: String,
    pub codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub user: String,
    pub role: MemberRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// 代表者: also sees the project's audit trail.
    Lead,
    /// 解析担当者.
    Researcher,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Lead => "lead",
            MemberRole::Researcher => "researcher",
        }
    }
}

/// `YYYY-MM` → `YYYYMM`.
fn year_month(s: &str) -> Option<i32> {
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (i32, i32) = (y.parse().ok()?, m.parse().ok()?);
    ((1900..=2100).contains(&y) && (1..=12).contains(&m)).then_some(y * 100 + m)
}

impl Period {
    /// `(from, to)` as `YYYYMM`.
    pub fn months(&self) -> Result<(i32, i32), GovernanceError> {
        let bad = |s: &str| GovernanceError::Spec(format!("period month {s:?} is not YYYY-MM"));
        let from = year_month(&self.from).ok_or_else(|| bad(&self.from))?;
        let to = year_month(&self.to).ok_or_else(|| bad(&self.to))?;
        if from > to {
            return Err(GovernanceError::Spec("period ends before it starts".into()));
        }
        Ok((from, to))
    }
}

impl ApprovedTable {
    /// `(db, table)`.
    pub fn parts(&self) -> Result<(&str, &str), GovernanceError> {
        self.table
            .split_once('.')
            .filter(|(d, t)| !d.is_empty() && !t.is_empty() && !t.contains('.'))
            .ok_or_else(|| GovernanceError::Spec(format!("table {:?} is not db.table", self.table)))
    }
}

impl ProjectSpec {
    pub fn from_toml(text: &str) -> Result<Self, GovernanceError> {
        toml::from_str(text).map_err(|e| GovernanceError::Spec(e.to_string()))
    }

    pub fn expiry(&self) -> Result<CivilDate, GovernanceError> {
        niji_pseudo::date::parse_date(&self.expires).map_err(|_| {
            GovernanceError::Spec(format!("expires {:?} is not YYYY-MM-DD", self.expires))
        })
    }

    /// Databases of the approved tables, sorted.
    pub fn databases(&self) -> BTreeSet<&str> {
        self.tables
            .iter()
            .filter_map(|t| t.parts().ok().map(|(d, _)| d))
            .collect()
    }

    /// The linkage group a database's pseudonyms are keyed by: its group's members joined by
    /// `+` (sorted), or the database alone.
    pub fn linkage_group(&self, db: &str) -> String {
        match self.linkage.iter().find(|g| g.iter().any(|d| d == db)) {
            Some(group) => {
                let mut names: Vec<&str> = group.iter().map(String::as_str).collect();
                names.sort_unstable();
                names.join("+")
            }
            None => db.to_string(),
        }
    }

    /// Checks the spec against the catalog; everything that cannot be resolved is refused
    /// (the first problem found; [`ProjectSpec::problems`] lists them all).
    pub fn validate(&self, catalog: &Catalog) -> Result<(), GovernanceError> {
        match self.problems(catalog).into_iter().next() {
            None => Ok(()),
            Some(p) => Err(GovernanceError::Spec(p.to_string())),
        }
    }

    /// Everything wrong with the spec against the catalog, each named by its field.
    pub fn problems(&self, catalog: &Catalog) -> Vec<FieldError> {
        let mut out = Problems::default();
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && self.id.as_bytes()[0].is_ascii_alphanumeric();
        if !id_ok {
            out.add("id", format!(
                "project id {:?} must be 1-64 of a-z, 0-9, '-', '_' starting with a letter or digit",
                self.id
            ));
        }
        if let Err(e) = self.expiry() {
            out.add("expires", e.to_string());
        }
        if self.tables.is_empty() {
            out.add("tables", "a project needs at least one approved table");
        }
        if let Some(Err(e)) = self.period.as_ref().map(Period::months) {
            out.add("period", e.to_string());
        }
        let mut seen_tables = BTreeSet::new();
        for (i, t) in self.tables.iter().enumerate() {
            self.table_problems(catalog, i, t, &mut seen_tables, &mut out);
        }
        let approved_dbs = self.databases();
        let mut grouped = BTreeSet::new();
        for (i, group) in self.linkage.iter().enumerate() {
            let field = format!("linkage[{i}]");
            if group.len() < 2 {
                out.add(&field, "a linkage group names at least two databases");
            }
            for db in group {
                if !approved_dbs.contains(db.as_str()) {
                    out.add(
                        &field,
                        format!("linkage names {db}, which has no approved table"),
                    );
                }
                if !grouped.insert(db) {
                    out.add(&field, format!("database {db} is in two linkage groups"));
                }
            }
        }
        if let Some(cohort) = &self.cohort {
            cohort_problems(catalog, cohort, &mut out);
        }
        if self.members.is_empty() {
            out.add("members", "a project needs at least one member");
        } else if !self.members.iter().any(|m| m.role == MemberRole::Lead) {
            out.add("members", "a project needs a lead member");
        }
        let mut users = BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            if !users.insert(&m.user) {
                out.add(
                    &format!("members[{i}]"),
                    format!("member {} is listed twice", m.user),
                );
            }
        }
        out.0
    }

    fn table_problems<'a>(
        &self,
        catalog: &Catalog,
        i: usize,
        t: &'a ApprovedTable,
        seen_tables: &mut BTreeSet<&'a str>,
        out: &mut Problems,
    ) {
        let field = format!("tables[{i}]");
        let (db, name) = match t.parts() {
            Ok(parts) => parts,
            Err(e) => return out.add(&field, e.to_string()),
        };
        if !seen_tables.insert(t.table.as_str()) {
            out.add(&field, format!("table {} is listed twice", t.table));
        }
        let Some(table) = catalog.table(db, name) else {
            return out.add(&field, format!("table {} is not in the catalog", t.table));
        };
        if t.columns.is_empty() {
            out.add(
                &format!("{field}.columns"),
                format!("table {} approves no columns", t.table),
            );
        }
        let mut seen = BTreeSet::new();
        for (j, c) in t.columns.iter().enumerate() {
            let field = format!("{field}.columns[{j}]");
            if !seen.insert(c) {
                out.add(&field, format!("column {}.{c} is listed twice", t.table));
            }
            if c == PSEUDONYM_COLUMN {
                out.add(
                    &field,
                    format!("{PSEUDONYM_COLUMN} is added to person-level tables; do not list it"),
                );
                continue;
            }
            match table.column(c).map(|col| col.class) {
                None => out.add(&field, format!("column {}.{c} is not in the catalog", t.table)),
                Some(Sensitivity::DirectIdentifier) => out.add(&field, format!(
                    "column {}.{c} is a direct identifier and is never stored",
                    t.table
                )),
                Some(Sensitivity::Pseudonym) => out.add(&field, format!(
                    "column {}.{c} is a linkage identifier; projects see persons only as {PSEUDONYM_COLUMN}",
                    t.table
                )),
                Some(_) => {}
            }
        }
        if self.period.is_some() && table.is_person_level() && table.period_column.is_none() {
            out.add(
                &field,
                format!(
                    "table {} has no period column, so the approved period cannot be applied",
                    t.table
                ),
            );
        }
    }
}

fn cohort_problems(catalog: &Catalog, cohort: &Cohort, out: &mut Problems) {
    let mut parts = cohort.source.splitn(3, '.');
    let (Some(db), Some(table), Some(column)) = (parts.next(), parts.next(), parts.next()) else {
        return out.add(
            "cohort.source",
            format!("cohort source {:?} is not db.table.column", cohort.source),
        );
    };
    let source = catalog.table(db, table).filter(|t| t.is_about_persons());
    match source.map(|t| t.column(column)) {
        None => out.add(
            "cohort.source",
            format!("cohort source table {db}.{table} is not a person-level table in the catalog"),
        ),
        Some(Some(c)) if c.ty == ColumnType::String && c.is_stored() => {}
        Some(_) => out.add(
            "cohort.source",
            format!(
                "cohort source column {} is not a stored text column",
                cohort.source
            ),
        ),
    }
    if cohort.codes.is_empty() || cohort.codes.iter().any(|c| c.trim().is_empty()) {
        out.add("cohort.codes", "cohort codes must be non-empty prefixes");
    }
}

/// One thing wrong with a form, named by its field (`tables[1].columns[0]`), so that a form
/// can show it beside the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Problems found so far.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<FieldError>);

impl Problems {
    pub(crate) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }
}
