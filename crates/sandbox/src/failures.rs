//! Real-data failures: kept for custodians, counted towards pausing a researcher who keeps failing.

use super::*;

/// Audit actions of real-data failures: one the researcher was told of, and one hidden behind
/// a held outcome (its query was held for its shape, whether or not it ran to the end).
pub(crate) const FAILED: &str = "query.failed";
pub(crate) const FAILED_BEHIND_HELD: &str = "query.failed_held";

impl Visiting {
    /// Real-data failures of `user` the researcher was told of within the last hour.
    pub(crate) async fn recent_failures(&self, user: &str) -> Result<i64, SandboxError> {
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        Ok(self
            .platform
            .audit()
            .count_since(user, FAILED, &niji_audit::rfc3339(hour_ago))
            .await?)
    }

    /// Each failure a researcher sees tells a bit about the data, whatever it says: past
    /// `real_failures_per_hour` of them, their real-data queries wait for the hour to pass
    /// (a custodian was alerted when the limit was reached).
    pub(crate) async fn refuse_if_paused(&self, user: &str) -> Result<(), SandboxError> {
        let limit = i64::from(self.limits.real_failures_per_hour);
        if limit > 0 && self.recent_failures(user).await? >= limit {
            return Err(SandboxError::Refused(
                "your real-data queries are paused: too many of them failed within the last hour, and a custodian has been alerted; dummy data stays open".into(),
            ));
        }
        Ok(())
    }

    /// Keeps why a real-data query failed where only custodians read it (the audit log, under
    /// the query id). A failure the researcher was `told` of counts towards pausing their
    /// real-data queries; the one that reaches the limit raises an alert.
    pub(crate) async fn record_failure(
        &self,
        req: &QueryRequest,
        query_id: &str,
        cause: &SandboxError,
        told: bool,
    ) -> Result<(), SandboxError> {
        let action = if told { FAILED } else { FAILED_BEHIND_HELD };
        // Recorded and counted one at a time, so that exactly one failure reaches the limit.
        let _counting = self.failure_lock.lock().await;
        let detail = serde_json::json!({
            "query_id": query_id,
            "project": req.scope.key(),
            "kind": cause.kind(),
            "cause": cause.full_text(),
        });
        self.platform
            .audit()
            .append(&req.user, action, &detail)
            .await?;
        let limit = self.limits.real_failures_per_hour;
        if told && limit > 0 && self.recent_failures(&req.user).await? == i64::from(limit) {
            tracing::warn!("real-data queries paused after repeated failures; custodian alerted");
            let alert = serde_json::json!({
                "rule": "real_failures_per_hour",
                "user": req.user,
                "limit": limit,
                "query_id": query_id,
            });
            self.platform
                .audit()
                .append("niji", "alert", &alert)
                .await?;
        }
        Ok(())
    }
}
