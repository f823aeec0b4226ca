//! Close-out's first step: the lead's completion report (利用終了報告). It is kept in the
//! platform database and the audit log, with its digest; a project approved through review
//! closes only once its lead has reported, and the deletion certificate names the report.

use niji_pseudo::hex32;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{GovernanceError, MemberRole, Platform};

const MIN_REPORT: usize = 40;
const MAX_REPORT: usize = 20_000;

/// A completion report as kept.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CompletionReport {
    pub project: String,
    pub author: String,
    pub report: String,
    pub sha256: String,
    pub submitted_at: String,
}

impl Platform {
    /// The lead of live project `project` reports on its use; once only.
    pub async fn report_completion(
        &self,
        actor: &str,
        project: &str,
        report: &str,
    ) -> Result<CompletionReport, GovernanceError> {
        let lead = self.db().project(project).await?.is_some_and(|p| {
            p.state == crate::ProjectState::Open
                && p.spec
                    .members
                    .iter()
                    .any(|m| m.user == actor && m.role == MemberRole::Lead)
        });
        if !lead {
            return Err(GovernanceError::Denied(format!(
                "only the lead of open project {project} reports its completion"
            )));
        }
        let report = report.trim();
        let n = report.chars().count();
        if !(MIN_REPORT..=MAX_REPORT).contains(&n) {
            return Err(GovernanceError::Refused(format!(
                "a completion report says what was done and published ({MIN_REPORT}-{MAX_REPORT} characters)"
            )));
        }
        let kept = CompletionReport {
            project: project.to_string(),
            author: actor.to_string(),
            report: report.to_string(),
            sha256: hex32(&Sha256::digest(report.as_bytes()).into()),
            submitted_at: niji_audit::now_rfc3339(),
        };
        if !self.db().add_completion_report(&kept).await? {
            return Err(GovernanceError::Exists(format!(
                "the completion report of {project}"
            )));
        }
        self.audited(actor, "project.report", &kept).await?;
        let custodians = self.users_with(crate::UserRole::Custodian).await?;
        let message = format!("{actor} reported the completion of {project}; it may be closed");
        self.db()
            .notify(&custodians, None, "completion", &message)
            .await?;
        Ok(kept)
    }
}
