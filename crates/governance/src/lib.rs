//! The platform service ([`Platform`]) and its state: users and their API tokens, projects with the scope the
//! committee approved (see [`ProjectSpec`]) and their members, in the platform's SQL database
//! (SQLite embedded); roles and project membership are decided by casbin ([`Authz`]) with the
//! model and policy in `policies/`.

mod accounts;
mod alerts;
pub mod applications;
mod audit_access;
mod audited;
mod authz;
mod completion;
mod consent;
mod dashboard;
mod datasets;
mod feasibility;
mod outputs;
mod platform;
mod review;
mod scripts;
mod service;
pub mod spec;
mod totp;
mod web_sessions;

pub use accounts::{Account, LOCK_AFTER, LOCK_WINDOW, TotpEnrolment};
pub use alerts::{Alert, AlertKind, AlertPolicy, AlertRule};
pub use applications::{
    Application, ApplicationForm, ApplicationKind, ApplicationPage, ApplicationState, Conditions,
    DecisionOutcome, ReviewPolicy, ReviewVote,
};
pub use authz::{Action, Authz};
pub use completion::CompletionReport;
pub use consent::{Withdrawal, Withdrawals};
pub use datasets::{
    DATASET_BUILDER, DatasetRequest, DatasetRequestForm, DatasetVersion, GRANT_DAYS, Offered,
    RequestState,
};
pub use feasibility::{FEASIBILITY_COUNT, FeasibilityPolicy};
pub use outputs::{CastVote, NewOutput, Output, OutputOutcome, Review, Stored, Vote};
pub use platform::{PlatformDb, Project, ProjectState, User, UserRole, hash_token, new_token};
pub use review::{Interrupted, OutputAccess, VoteTicket};
pub use scripts::{Script, ScriptFile, ScriptState, bundle_digest};
pub use service::{DeletedFile, DeletionCertificate, Platform, SHELL_ACTOR_PREFIX, today};
pub use spec::{
    ApprovedTable, Cohort, FieldError, Member, MemberRole, PSEUDONYM_COLUMN, Period, ProjectSpec,
};
pub use totp::current_code as totp_code;
pub use web_sessions::{WEB_SESSION_LIFETIME, WebSession};

#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("project spec: {0}")]
    Spec(String),
    #[error("platform database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("platform database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Exists(String),
    #[error("no such {0}")]
    NotFound(String),
    #[error("authorisation policy: {0}")]
    Policy(#[from] casbin::Error),
    #[error("random source: {0}")]
    Random(String),
    #[error("unknown user or wrong token")]
    Unauthenticated,
    #[error("not permitted: {0}")]
    Denied(String),
    /// A request the platform will not carry out (a state it is not in, a text too short).
    #[error("{0}")]
    Refused(String),
    /// A form with problems, each named by its field.
    #[error("the form has {} problem(s): {}", .0.len(), .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Audit(#[from] niji_audit::AuditError),
    #[error("project files at {0}")]
    Files(std::path::PathBuf, #[source] std::io::Error),
}
