//! `policies/review.toml`: the quorum and each phase's due date in working days.

use std::path::Path;

use serde::Deserialize;

use crate::GovernanceError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewPolicy {
    /// Votes of assigned, unrecused members on the submitted version before the chair signs.
    pub quorum: usize,
    pub due_working_days: DueDays,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DueDays {
    /// Submitted → reviewers assigned.
    pub assignment: u32,
    /// Assigned → decision.
    pub review: u32,
    /// Decision → the applicant's answer.
    pub response: u32,
}

impl ReviewPolicy {
    pub fn load(path: &Path) -> Result<Self, GovernanceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GovernanceError::Files(path.to_path_buf(), e))?;
        Self::parse(&text).map_err(|e| GovernanceError::Spec(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let policy: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if policy.quorum == 0 {
            return Err("quorum must be at least 1: a decision rests on votes".into());
        }
        let d = policy.due_working_days;
        if [d.assignment, d.review, d.response].contains(&0) {
            return Err("every phase needs at least one working day".into());
        }
        Ok(policy)
    }

    pub fn due(&self) -> DueDays {
        self.due_working_days
    }
}
