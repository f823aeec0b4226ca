//! What a query runs for. The chokepoint takes a scope, not a project, so that what runs for
//! something other than a project (the next issues: a standard dataset built once per data
//! version, a feasibility count for an approved organisation) passes the same guard, checks,
//! limits and audit without a fake project. Fail closed: each scope says who may run what in
//! it, and a scope the chokepoint does not resolve runs nothing.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Scope {
    /// A project the committee approved: its members, its views (tables, columns, period,
    /// cohort), its workspace, its release ledger and its held outputs.
    Project(String),
}

impl Scope {
    pub fn project(id: impl Into<String>) -> Self {
        Scope::Project(id.into())
    }

    /// The name the scope's views, query slots, ledger and held outputs are kept under.
    pub fn key(&self) -> &str {
        match self {
            Scope::Project(id) => id,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Project(id) => write!(f, "project {id}"),
        }
    }
}
