//! Errors of the Visiting environment, and what a caller is told of each.

use super::*;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Refused(String),
    #[error("not permitted: {0}")]
    Denied(String),
    #[error("busy: {0}")]
    Busy(String),
    /// Stopped at the time limit.
    #[error("cancelled: {0}")]
    TimeLimit(String),
    #[error("limit: {0}")]
    Limit(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("query engine: {0}")]
    Engine(#[from] DataFusionError),
    #[error(transparent)]
    Governance(#[from] GovernanceError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("synthetic store: {0}")]
    Synthetic(String),
    #[error(transparent)]
    Disclosure(#[from] niji_disclosure::DisclosureError),
    #[error(transparent)]
    Ledger(#[from] niji_disclosure::LedgerStoreError),
    /// An extract's rows could not be anonymised (or failed the check after). It arises from
    /// the data, so on real data its text is kept for custodians only.
    #[error(transparent)]
    Anonymisation(#[from] niji_anonymise::AnonymiseError),
    /// A real-data query failed while it ran. What failed could tell about the data, so the
    /// cause is kept for custodians (the audit log, by query id) and never shown or logged.
    #[error("the query failed while it ran on real data")]
    RunFailed(#[source] Box<SandboxError>),
}

impl SandboxError {
    /// The outcome status this error gives a query.
    pub fn status(&self) -> Status {
        match self {
            SandboxError::Refused(_) | SandboxError::Denied(_) | SandboxError::Busy(_) => {
                Status::Refused
            }
            SandboxError::Governance(
                GovernanceError::Unauthenticated
                | GovernanceError::Denied(_)
                | GovernanceError::Refused(_)
                | GovernanceError::Invalid(_),
            ) => Status::Refused,
            _ => Status::Error,
        }
    }

    /// What kind of failure this is for the caller; each interface takes its status from it
    /// (the server's one mapping). A real-data failure is internal whatever its cause, except
    /// the time limit, which the caller sees by the clock anyway.
    pub fn failure(&self) -> Failure {
        match self {
            SandboxError::Governance(GovernanceError::Unauthenticated) => Failure::Unauthenticated,
            SandboxError::Denied(_) | SandboxError::Governance(GovernanceError::Denied(_)) => {
                Failure::Denied
            }
            SandboxError::Busy(_) => Failure::Busy,
            SandboxError::TimeLimit(_) => Failure::TimeLimit,
            SandboxError::RunFailed(cause) if matches!(**cause, SandboxError::TimeLimit(_)) => {
                Failure::TimeLimit
            }
            SandboxError::Refused(_)
            | SandboxError::Limit(_)
            | SandboxError::Governance(
                GovernanceError::Spec(_)
                | GovernanceError::Exists(_)
                | GovernanceError::Refused(_)
                | GovernanceError::Invalid(_),
            ) => Failure::Refused,
            SandboxError::Governance(GovernanceError::NotFound(_)) => Failure::NotFound,
            _ => Failure::Internal,
        }
    }

    /// What kind of failure this is, for logs that may not carry its text.
    pub fn kind(&self) -> &'static str {
        match self {
            SandboxError::Refused(_) => "refused",
            SandboxError::Denied(_) => "denied",
            SandboxError::Busy(_) => "busy",
            SandboxError::TimeLimit(_) => "cancelled",
            SandboxError::Limit(_) => "limit",
            SandboxError::Unavailable(_) => "unavailable",
            SandboxError::Config(_) => "configuration",
            SandboxError::Engine(_) => "engine",
            SandboxError::Governance(_) => "governance",
            SandboxError::Audit(_) => "audit",
            SandboxError::Io(_) => "file",
            SandboxError::Parquet(_) => "parquet",
            SandboxError::Synthetic(_) => "synthetic store",
            SandboxError::Disclosure(_) => "disclosure",
            SandboxError::Ledger(_) => "ledger",
            SandboxError::Anonymisation(_) => "anonymisation",
            SandboxError::RunFailed(_) => "run failed",
        }
    }

    /// Whether this error comes from running on data (a refusal, a denial or a busy server
    /// is decided before any data is read).
    pub(crate) fn arose_from_data(&self) -> bool {
        !matches!(
            self,
            SandboxError::Refused(_)
                | SandboxError::Denied(_)
                | SandboxError::Busy(_)
                | SandboxError::Governance(
                    GovernanceError::Unauthenticated
                        | GovernanceError::Denied(_)
                        | GovernanceError::Refused(_)
                        | GovernanceError::Invalid(_)
                )
        )
    }

    /// The problems of a refused form, each named by its field (empty for other errors).
    pub fn field_errors(&self) -> &[niji_governance::FieldError] {
        match self {
            SandboxError::Governance(GovernanceError::Invalid(problems)) => problems,
            _ => &[],
        }
    }

    /// The error and its sources, one after another: for custodians only.
    pub fn full_text(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    /// What the caller is told: the reason for refusals and limits, never file paths, keys
    /// or engine internals (those go to the server's log under the query id), and nothing of
    /// why a real-data query failed.
    pub fn public_message(&self) -> String {
        match self {
            SandboxError::RunFailed(_) => {
                "the query could not be completed on real data; why is not shown, as it could tell about the data (develop the query on dummy data, or ask the custodian, quoting the query id)".into()
            }
            SandboxError::Refused(m) => m.clone(),
            SandboxError::Denied(_)
            | SandboxError::Busy(_)
            | SandboxError::TimeLimit(_)
            | SandboxError::Limit(_) => self.to_string(),
            SandboxError::Engine(e) => match e.find_root() {
                DataFusionError::ResourcesExhausted(_) => {
                    "limit: the query needed more memory than its limit".into()
                }
                DataFusionError::ArrowError(a, _) => {
                    format!("query failed: {}", without_paths(&a.to_string()))
                }
                DataFusionError::Execution(m) => format!("query failed: {}", without_paths(m)),
                _ => "query failed: internal error".into(),
            },
            SandboxError::Governance(GovernanceError::Spec(m)) => format!("invalid: {m}"),
            SandboxError::Governance(GovernanceError::Exists(m)) => format!("{m} already exists"),
            SandboxError::Governance(GovernanceError::NotFound(m)) => format!("no such {m}"),
            SandboxError::Governance(
                e @ (GovernanceError::Unauthenticated
                | GovernanceError::Denied(_)
                | GovernanceError::Refused(_)
                | GovernanceError::Invalid(_)),
            ) => e.to_string(),
            _ => "internal error".into(),
        }
    }
}

/// The kinds of failure a caller is told apart, one status each on every interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Unknown user or wrong credentials.
    Unauthenticated,
    /// Signed in, but not permitted (no member of the project, not a checker, paused).
    Denied,
    /// No slot free within the queue wait.
    Busy,
    /// Stopped at the time limit.
    TimeLimit,
    /// The request itself is refused: SQL the guard refuses, a limit, an invalid spec.
    Refused,
    NotFound,
    Internal,
}

/// An execution error's first line, unless it names a file (the store's layout is internal;
/// planning errors, which quote the caller's own SQL, are passed on as they are).
pub(crate) fn without_paths(s: &str) -> String {
    let line = guard::first_line(s);
    if line.contains('/') {
        "internal error".into()
    } else {
        line
    }
}
