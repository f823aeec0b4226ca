//! The automatic risk summary the committee reads beside the form, computed from the catalog:
//! which quasi-identifiers are asked for (birth date, municipality, facility, free text),
//! which databases are linked, which sensitive classes come with the rows. Counts of persons
//! per cohort code come from the store, on the query side (see the sandbox); here is what the
//! catalog alone tells.

use niji_catalog::{Catalog, DisclosureRole, Role, Sensitivity};
use serde::Serialize;

use super::ApplicationForm;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RiskColumn {
    pub table: String,
    pub column: String,
    /// What makes it a risk, in words (`birth date`, `municipality`, `facility`, …).
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Elevated,
    High,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RiskSummary {
    pub level: RiskLevel,
    pub quasi_identifiers: Vec<RiskColumn>,
    pub free_text: Vec<RiskColumn>,
    pub sensitive: Vec<RiskColumn>,
    /// Databases linked by ID5, per group.
    pub linkage: Vec<Vec<String>>,
    /// Consent-based databases (難病DB, 小慢DB): withdrawals apply to every project.
    pub consent_based: Vec<String>,
    /// Persons in the store per code the cohort asks for (filled in by the sandbox, which
    /// reads the store; empty without a cohort).
    pub codes: Vec<CodeCount>,
    /// Why the level is what it is.
    pub reasons: Vec<String>,
}

/// Persons in the store with a code the cohort asks for, at the requested granularity (the
/// code as a prefix). Under the disclosure threshold of its database the count is not shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CodeCount {
    /// `db.table.column`.
    pub source: String,
    pub code: String,
    /// The count, when it is at least the threshold.
    pub persons: Option<u64>,
    pub threshold: u64,
    pub under_threshold: bool,
}

impl RiskSummary {
    /// Adds the store's counts; codes under the threshold raise the level.
    pub fn add_code_counts(&mut self, counts: Vec<CodeCount>) {
        let under: Vec<&str> = counts
            .iter()
            .filter(|c| c.under_threshold)
            .map(|c| c.code.as_str())
            .collect();
        if !under.is_empty() {
            self.reasons.push(format!(
                "codes with fewer persons than the disclosure threshold in the store: {}",
                under.join(", ")
            ));
            self.level = level_of(self.reasons.len());
        }
        self.codes = counts;
    }
}

fn level_of(reasons: usize) -> RiskLevel {
    match reasons {
        0 => RiskLevel::Low,
        1 | 2 => RiskLevel::Elevated,
        _ => RiskLevel::High,
    }
}

/// Databases whose persons consented (and may withdraw).
pub const CONSENT_BASED: &[&str] = &["nanbyo", "shoman"];

pub fn summarise(form: &ApplicationForm, catalog: &Catalog) -> RiskSummary {
    let mut quasi = Vec::new();
    let mut free_text = Vec::new();
    let mut sensitive = Vec::new();
    for t in &form.tables {
        let Ok((db, name)) = t.parts() else { continue };
        let Some(table) = catalog.table(db, name) else {
            continue;
        };
        for c in t.columns.iter().filter_map(|c| table.column(c)) {
            let at = |what: &str| RiskColumn {
                table: t.table.clone(),
                column: c.name.clone(),
                what: what.to_string(),
            };
            if c.free_text {
                free_text.push(at("free text"));
            }
            match c.class {
                Sensitivity::QuasiIdentifier => {
                    let what = match (c.role, c.disclosure) {
                        (Some(Role::BirthDate), _) => "birth date",
                        (Some(Role::Sex), _) => "sex",
                        (_, Some(DisclosureRole::Municipality)) => "municipality",
                        (_, Some(DisclosureRole::Facility)) => "facility",
                        _ => "quasi-identifier",
                    };
                    quasi.push(at(what));
                }
                Sensitivity::Sensitive => {
                    sensitive.push(at(c.code_system.as_deref().unwrap_or("clinical values")));
                }
                _ => {}
            }
        }
    }
    let consent_based: Vec<String> = form
        .databases()
        .into_iter()
        .filter(|d| CONSENT_BASED.contains(&d.as_str()))
        .collect();
    let mut reasons = Vec::new();
    let named = |what: &str| quasi.iter().any(|q| q.what == what);
    if named("birth date") {
        reasons.push("birth dates identify in combination with sex and area".to_string());
    }
    if named("municipality") {
        reasons.push(
            "municipalities make small areas: cells under the population rules are suppressed"
                .into(),
        );
    }
    if named("facility") {
        reasons.push("facilities can single out a hospital's patients".into());
    }
    if !free_text.is_empty() {
        reasons.push("free text may name persons".into());
    }
    if !form.linkage.is_empty() {
        reasons.push("linkage joins a person's records across databases".into());
    }
    if !consent_based.is_empty() {
        reasons.push("rare diseases: few persons per disease".into());
    }
    let level = level_of(reasons.len());
    RiskSummary {
        level,
        quasi_identifiers: quasi,
        free_text,
        sensitive,
        linkage: form.linkage.clone(),
        consent_based,
        codes: Vec::new(),
        reasons,
    }
}
