//! Who reads the audit log: custodians the whole of it (with the chain's verification), a
//! project's members its own trail.

use niji_audit::{Entry, Filter, Verification};

use crate::{Action, GovernanceError, Platform};

impl Platform {
    /// Entries matching `filter`, newest first (custodians).
    pub async fn audit_entries(
        &self,
        actor: &str,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<Entry>, GovernanceError> {
        self.may(actor, Action::ReadAudit, "read the audit log")
            .await?;
        Ok(self.audit().search(filter, limit).await?)
    }

    /// Walks the whole chain and compares it with its anchor (custodians); the check is
    /// itself logged.
    pub async fn verify_audit(&self, actor: &str) -> Result<Verification, GovernanceError> {
        self.may(actor, Action::ReadAudit, "verify the audit log")
            .await?;
        let verification = self.audit().verify().await?;
        let detail = serde_json::json!({
            "entries": verification.entries,
            "intact": verification.is_intact(),
        });
        self.audited(actor, "audit.verify", &detail).await?;
        Ok(verification)
    }

    /// A project's own trail: the entries naming it, newest first (its members).
    pub async fn project_audit(
        &self,
        actor: &str,
        project: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Entry>, GovernanceError> {
        if !self.allows(actor, project, Action::ReadProjectAudit).await {
            let e = GovernanceError::Denied(format!("you may not read the trail of {project}"));
            let detail = serde_json::json!({"attempted": "read a project's audit trail", "project": project});
            return Err(self.refusal(actor, detail, e).await);
        }
        // The `"project":"<id>"` member every entry about the project carries.
        let needle = format!("\"project\":{}", serde_json::Value::from(project));
        let filter = Filter {
            contains: Some(needle),
            before,
            ..Filter::default()
        };
        Ok(self.audit().search(&filter, limit).await?)
    }
}
