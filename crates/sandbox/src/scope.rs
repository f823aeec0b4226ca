//! What a query runs for. The chokepoint takes a scope, not a project, so that what runs for
//! something other than a project (a standard dataset built once per data version, a
//! feasibility count for an approved organisation) passes the same guard, checks, limits and
//! audit without a fake project. Fail closed: each scope says who may run what in it, and a
//! scope the chokepoint does not resolve runs nothing.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// A project the committee approved: its members, its views (tables, columns, period,
    /// cohort), its workspace, its release ledger and its held outputs.
    Project { id: String },
    /// A standard dataset's build: the views its definition names, its own release ledger
    /// across versions (every requester holds every version), and no workspace or held
    /// outputs: a result that would be held fails the build.
    Dataset {
        name: String,
        /// `standard:<name>`: the ledger's and the audit's name for it (no project id has a ':').
        key: String,
    },
    /// Feasibility counts of an organisation's analysts: fixed views of 難病DB, and one
    /// release ledger for the whole organisation, so that two of its users cannot difference
    /// each other's counts. Nothing is kept: a count that would be held is refused.
    Feasibility {
        organisation: String,
        /// `feasibility:<organisation>`.
        key: String,
        /// Only a count compiled here runs in this scope: its quotas and lockout are checked
        /// before it is compiled (`Visiting::feasibility_count`), so no other caller of the
        /// chokepoint may bring SQL of its own into it.
        #[serde(skip)]
        compiled: Compiled,
    },
}

/// Proof that a scope was made inside the sandbox: it has no public constructor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Compiled(());

impl Scope {
    pub fn project(id: impl Into<String>) -> Self {
        Scope::Project { id: id.into() }
    }

    pub fn dataset(name: impl Into<String>) -> Self {
        let name = name.into();
        Scope::Dataset {
            key: format!("standard:{name}"),
            name,
        }
    }

    /// A count's scope: made only by the sandbox, for a count it compiled.
    pub(crate) fn feasibility(organisation: impl Into<String>) -> Self {
        let organisation = organisation.into();
        Scope::Feasibility {
            key: format!("feasibility:{organisation}"),
            organisation,
            compiled: Compiled(()),
        }
    }

    /// The name the scope's views, query slots, ledger and held outputs are kept under.
    pub fn key(&self) -> &str {
        match self {
            Scope::Project { id } => id,
            Scope::Dataset { key, .. } | Scope::Feasibility { key, .. } => key,
        }
    }

    /// Whether results it holds are kept for output checkers (a project's); elsewhere a held
    /// result is refused.
    pub fn keeps_outputs(&self) -> bool {
        matches!(self, Scope::Project { .. })
    }

    /// Whether the alert rules watch its queries: a researcher's and an analyst's are; a
    /// dataset's query is the custodian's definition, run by niji once per data version, whose
    /// differencing against earlier versions is the point of the checks, not an attack.
    pub fn watched(&self) -> bool {
        !matches!(self, Scope::Dataset { .. })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Project { id } => write!(f, "project {id}"),
            Scope::Dataset { name, .. } => write!(f, "standard dataset {name}"),
            Scope::Feasibility { organisation, .. } => {
                write!(f, "feasibility counts of {organisation}")
            }
        }
    }
}
