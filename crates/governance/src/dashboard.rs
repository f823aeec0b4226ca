//! The public dashboard's datasets: a custodian publishes a standard dataset's aggregates to
//! everyone, which opening it to approved organisations does not do.

use sqlx::Row;

use crate::{Action, GovernanceError, Platform};

impl Platform {
    /// Publishes (or withdraws) `dataset` on the public dashboard (custodians; audited). The
    /// caller has checked that it is a count table, never records.
    pub async fn set_published(
        &self,
        actor: &str,
        dataset: &str,
        published: bool,
    ) -> Result<(), GovernanceError> {
        self.may(actor, Action::ManageDatasets, "publish datasets")
            .await?;
        if published {
            sqlx::query("INSERT INTO dashboard_datasets (dataset, published_by, published_at) VALUES ($1, $2, $3) ON CONFLICT (dataset) DO NOTHING")
                .bind(dataset)
                .bind(actor)
                .bind(niji_audit::now_rfc3339())
                .execute(self.db().pool())
                .await?;
        } else {
            sqlx::query("DELETE FROM dashboard_datasets WHERE dataset = $1")
                .bind(dataset)
                .execute(self.db().pool())
                .await?;
        }
        let detail = serde_json::json!({"dataset": dataset, "published": published});
        self.audited(actor, "dataset.publish", &detail).await
    }

    /// The datasets on the public dashboard.
    pub async fn published_datasets(&self) -> Result<Vec<String>, GovernanceError> {
        let rows = sqlx::query("SELECT dataset FROM dashboard_datasets ORDER BY dataset")
            .fetch_all(self.db().pool())
            .await?;
        Ok(rows.iter().map(|r| r.get("dataset")).collect())
    }
}
