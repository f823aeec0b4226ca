//! Where an application stands, and the votes and decisions that move it.
//!
//! draft → submitted → under review → approved → active → expired / closed, with revision
//! requested (back to the applicant, then submitted again), rejected, and withdrawn (by the
//! applicant, any time before the project is live) on the way. Expired is not stored: an
//! active application is expired once its project's expiry has passed.

use serde::{Deserialize, Serialize};

use crate::Stored;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationState {
    Draft,
    Submitted,
    UnderReview,
    RevisionRequested,
    /// Signed by the chair; the applicant accepts the conditions or withdraws.
    Approved,
    Rejected,
    /// The project exists and answers.
    Active,
    Expired,
    Closed,
    Withdrawn,
}

impl Stored for ApplicationState {
    const ALL: &'static [Self] = &[
        Self::Draft,
        Self::Submitted,
        Self::UnderReview,
        Self::RevisionRequested,
        Self::Approved,
        Self::Rejected,
        Self::Active,
        Self::Expired,
        Self::Closed,
        Self::Withdrawn,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::UnderReview => "under_review",
            Self::RevisionRequested => "revision_requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Closed => "closed",
            Self::Withdrawn => "withdrawn",
        }
    }
}

impl ApplicationState {
    /// The state in words (`under review`), for messages.
    pub fn as_str_for_people(self) -> String {
        self.as_str().replace('_', " ")
    }

    /// The applicant may change the form (a submitted form is what reviewers read).
    pub fn is_editable(self) -> bool {
        matches!(self, Self::Draft | Self::RevisionRequested)
    }

    /// The committee is still working on it.
    pub fn is_in_review(self) -> bool {
        matches!(self, Self::Submitted | Self::UnderReview)
    }

    /// Nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Rejected | Self::Expired | Self::Closed | Self::Withdrawn
        )
    }
}

/// A new project, or a change to an active one (columns, period, members, duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationKind {
    New,
    Amendment,
}

impl Stored for ApplicationKind {
    const ALL: &'static [Self] = &[Self::New, Self::Amendment];

    fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Amendment => "amendment",
        }
    }
}

/// A reviewer's vote on one submitted version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewVote {
    Approve,
    ApproveWithConditions,
    Revise,
    Reject,
}

impl Stored for ReviewVote {
    const ALL: &'static [Self] = &[
        Self::Approve,
        Self::ApproveWithConditions,
        Self::Revise,
        Self::Reject,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::ApproveWithConditions => "approve_with_conditions",
            Self::Revise => "revise",
            Self::Reject => "reject",
        }
    }
}

/// What the chair signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    Approved,
    RevisionRequested,
    Rejected,
}

impl Stored for DecisionOutcome {
    const ALL: &'static [Self] = &[Self::Approved, Self::RevisionRequested, Self::Rejected];

    fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::RevisionRequested => "revision_requested",
            Self::Rejected => "rejected",
        }
    }
}

impl DecisionOutcome {
    pub fn state(self) -> ApplicationState {
        match self {
            Self::Approved => ApplicationState::Approved,
            Self::RevisionRequested => ApplicationState::RevisionRequested,
            Self::Rejected => ApplicationState::Rejected,
        }
    }
}

/// The sections of the form a reviewer comments on.
pub const SECTIONS: &[&str] = &[
    "purpose",
    "public_interest",
    "analysts",
    "data",
    "linkage",
    "duration",
    "brought_in",
    "overall",
];
