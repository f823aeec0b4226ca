//! Applications and their review: one window for every database (利用申請の受付窓口の一元化).
//!
//! An applicant fills in one [`ApplicationForm`] for any of NDB, 介護DB, DPC, 難病DB and
//! 小慢DB; the chair assigns committee members, experts per database; members declare
//! conflicts of interest (a member of the applicant's organisation is recused without asking)
//! and vote with a comment per section; the chair signs the decision with [`Conditions`]; the
//! applicant accepts them, and the approval compiles into the project. Every step is checked,
//! audited in the same hash-chained log as the queries, and addressed to whom it concerns as a
//! stored notification. Due dates count Japanese working days ([`calendar`]).
//!
//! - `form`: the form and its checks against the catalog;
//! - `state`: states, votes, outcomes;
//! - `conditions`: conditions of approval and the compilation into a project;
//! - `applicant` / `committee`: the two sides' use cases on [`crate::Platform`];
//! - `views`: pages, queues, phase times; `risk`: the automatic risk summary;
//! - `store`: the tables; `policy`: `policies/review.toml`.

mod applicant;
pub mod calendar;
mod committee;
mod conditions;
mod form;
mod policy;
pub mod risk;
mod state;
mod store;
mod views;

pub use conditions::{Conditions, DatabaseDecision, last_day};
pub use form::{
    ApplicationForm, BroughtInFile, BroughtInKind, MAX_DURATION_MONTHS, PublicInterest,
    UseEnvironment,
};
pub use policy::{DueDays, ReviewPolicy};
pub use state::{ApplicationKind, ApplicationState, DecisionOutcome, ReviewVote, SECTIONS};
pub use store::{Application, ApplicationLine, Assignment, CastReview, Decision, Notification};
pub use views::{ApplicationPage, PhaseTime, QueueLine, phases};
