//! What an applicant fills in: one form for any of the databases (NDB, 介護DB, DPC, 難病DB,
//! 小慢DB), the same for a new project and for an amendment of one. A draft may be incomplete;
//! submission needs a form with no problems, each problem named by its field.

use std::collections::BTreeSet;

use niji_catalog::Catalog;
use serde::{Deserialize, Serialize};

use crate::spec::Problems;
use crate::{ApprovedTable, Cohort, FieldError, Member, Period, ProjectSpec};

/// The longest project a single approval grants (five years, as the guidelines allow).
pub const MAX_DURATION_MONTHS: u32 = 60;
const MAX_TEXT: usize = 8_000;
const MIN_PURPOSE: usize = 40;

/// 公益性: why the use serves the public. Marketing is a category so that it can be named and
/// refused, not silently mapped to something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PublicInterest {
    /// 研究開発 (academic and industrial research and development).
    ResearchAndDevelopment,
    /// 行政施策 (policy making by a public body).
    PublicPolicy,
    /// 医療・介護サービスの質の向上.
    QualityOfCare,
    /// 広告・マーケティング: not a public interest; refused.
    Marketing,
}

/// How the data are used. Only pseudonymised use in the Visiting environment exists; the form
/// names it so that the applicant agrees to it explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UseEnvironment {
    /// 仮名化情報を Visiting 環境で利用 (no extract leaves).
    PseudonymisedVisiting,
}

/// A file the applicant brings into the environment, named by its digest so that what runs is
/// what was reviewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroughtInFile {
    pub name: String,
    pub kind: BroughtInKind,
    /// SHA-256 of the file's bytes, 64 lower-case hex digits.
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BroughtInKind {
    /// 解析用 SQL.
    AnalysisSql,
    /// 独自マスター (a code list, for example ICD-10 groupings).
    CodeMaster,
}

/// The application form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationForm {
    /// The project's id once approved (a-z, 0-9, '-', '_').
    pub project_id: String,
    pub title: String,
    /// 利用目的: what is studied and why, in plain words.
    pub purpose: String,
    pub public_interest: PublicInterest,
    /// The applicant's organisation (its id on the platform).
    pub organisation: String,
    /// 利用者: every analyst and their role; exactly the project's members once approved.
    pub analysts: Vec<Member>,
    /// Per database the tables and their columns (`db.table`), from the catalog.
    pub tables: Vec<ApprovedTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Rows limited to a disease cohort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<Cohort>,
    /// Databases to link by ID5, in groups.
    #[serde(default)]
    pub linkage: Vec<Vec<String>>,
    pub duration_months: u32,
    pub environment: UseEnvironment,
    #[serde(default)]
    pub brought_in: Vec<BroughtInFile>,
}

impl ApplicationForm {
    pub fn from_toml(text: &str) -> Result<Self, crate::GovernanceError> {
        toml::from_str(text).map_err(|e| crate::GovernanceError::Spec(e.to_string()))
    }

    /// The databases the form asks for, sorted.
    pub fn databases(&self) -> BTreeSet<String> {
        self.tables
            .iter()
            .filter_map(|t| t.parts().ok().map(|(d, _)| d.to_string()))
            .collect()
    }

    /// The scope as a project spec expiring on `expires`: what the catalog checks apply to,
    /// and what an approval compiles into.
    pub fn to_spec(&self, expires: &str) -> ProjectSpec {
        ProjectSpec {
            id: self.project_id.clone(),
            title: self.title.clone(),
            expires: expires.to_string(),
            tables: self.tables.clone(),
            period: self.period.clone(),
            cohort: self.cohort.clone(),
            linkage: self.linkage.clone(),
            members: self.analysts.clone(),
            min_persons: None,
        }
    }

    /// Everything that stops the form from being submitted, each named by its field: its own
    /// fields here, its scope by the same checks a project spec gets.
    pub fn problems(&self, catalog: &Catalog) -> Vec<FieldError> {
        let mut out = Problems::default();
        bounded_text(&mut out, "title", &self.title, 1);
        bounded_text(&mut out, "purpose", &self.purpose, MIN_PURPOSE);
        if self.public_interest == PublicInterest::Marketing {
            out.add(
                "public_interest",
                "marketing is not a public interest (公益性); the databases are not provided for it",
            );
        }
        if self.organisation.trim().is_empty() {
            out.add("organisation", "the applicant's organisation is required");
        }
        if !(1..=MAX_DURATION_MONTHS).contains(&self.duration_months) {
            out.add(
                "duration_months",
                format!("a project runs 1 to {MAX_DURATION_MONTHS} months"),
            );
        }
        let mut names = BTreeSet::new();
        for (i, f) in self.brought_in.iter().enumerate() {
            let field = format!("brought_in[{i}]");
            if f.name.trim().is_empty() || f.name.len() > 200 || f.name.contains(['/', '\\']) {
                out.add(
                    &format!("{field}.name"),
                    "a plain file name of 1-200 characters",
                );
            }
            if !names.insert(f.name.as_str()) {
                out.add(
                    &format!("{field}.name"),
                    format!("{} is listed twice", f.name),
                );
            }
            let hex = f.sha256.len() == 64
                && f.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                out.add(
                    &format!("{field}.sha256"),
                    "the SHA-256 of the file as 64 lower-case hex digits",
                );
            }
        }
        // The scope: the spec's own field names, with the form's name for its members.
        let scope = self.to_spec("2099-12-31").problems(catalog);
        out.0.extend(scope.into_iter().map(|mut p| {
            if let Some(rest) = p.field.strip_prefix("members") {
                p.field = format!("analysts{rest}");
            }
            if p.field == "id" {
                p.field = "project_id".into();
            }
            p
        }));
        out.0
    }
}

fn bounded_text(out: &mut Problems, field: &str, text: &str, min: usize) {
    let n = text.trim().chars().count();
    if n < min {
        out.add(field, format!("at least {min} characters"));
    } else if n > MAX_TEXT {
        out.add(field, format!("at most {MAX_TEXT} characters"));
    }
}
