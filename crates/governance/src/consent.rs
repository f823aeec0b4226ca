//! Consent withdrawals (同意撤回) of 難病DB and 小慢DB. A custodian records the registration a
//! person withdrew, as its 研究用ID (the sandbox computes it with the custodian key and checks
//! the store for its rows). From then on the view builder leaves that person out of every
//! project, and held outputs made before the withdrawal are released only if running their
//! query again gives the same rows.

use serde::Serialize;
use sqlx::Row;

use crate::applications::risk::CONSENT_BASED;
use crate::{Action, GovernanceError, Platform};

/// A withdrawal as kept.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Withdrawal {
    pub id: i64,
    pub database: String,
    /// The registration's 研究用ID (a keyed hash; the custodian's to see).
    pub research_id: String,
    /// Stored rows of the registration when it was recorded (0: not delivered yet).
    pub matched_rows: i64,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// What the sandbox knows of the withdrawals: their 研究用IDs, in the order recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Withdrawals {
    pub research_ids: Vec<String>,
}

impl Withdrawals {
    /// How many: they only grow, so the count says whether views built earlier are right.
    pub fn count(&self) -> i64 {
        i64::try_from(self.research_ids.len()).unwrap_or(i64::MAX)
    }
}

impl Platform {
    /// Refused unless `actor` may record withdrawals: checked before the store is searched for
    /// a registration, which would otherwise tell anyone whether it is there.
    pub async fn may_record_withdrawals(&self, actor: &str) -> Result<(), GovernanceError> {
        self.may(actor, Action::WithdrawConsent, "record consent withdrawals")
            .await
    }

    /// Records that the registration with 研究用ID `research_id` of `database` withdrew
    /// consent; custodians only, once per registration.
    pub async fn record_withdrawal(
        &self,
        actor: &str,
        database: &str,
        research_id: &str,
        matched_rows: u64,
    ) -> Result<Withdrawal, GovernanceError> {
        self.may_record_withdrawals(actor).await?;
        if !CONSENT_BASED.contains(&database) {
            return Err(GovernanceError::Refused(format!(
                "{database} is not consent-based; withdrawals are recorded for {}",
                CONSENT_BASED.join(", ")
            )));
        }
        let well_formed = research_id.len() == 64
            && research_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(GovernanceError::Refused(
                "a research ID is 64 lowercase hex digits".into(),
            ));
        }
        let mut tx = self.db().db.begin_write("consent_withdrawals").await?;
        let known: Option<i64> =
            sqlx::query_scalar("SELECT id FROM consent_withdrawals WHERE research_id = $1")
                .bind(research_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = known {
            return Err(GovernanceError::Exists(format!(
                "this registration's withdrawal (W{id})"
            )));
        }
        let id: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM consent_withdrawals")
                .fetch_one(&mut *tx)
                .await?;
        let kept = Withdrawal {
            id,
            database: database.to_string(),
            research_id: research_id.to_string(),
            matched_rows: i64::try_from(matched_rows).unwrap_or(i64::MAX),
            recorded_by: actor.to_string(),
            recorded_at: niji_audit::now_rfc3339(),
        };
        sqlx::query(
            "INSERT INTO consent_withdrawals (id, database_name, research_id, matched_rows, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(kept.id)
        .bind(&kept.database)
        .bind(&kept.research_id)
        .bind(kept.matched_rows)
        .bind(&kept.recorded_by)
        .bind(&kept.recorded_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // The log is read by project leads too: it names the withdrawal, not the registration.
        self.audited(
            actor,
            "consent.withdraw",
            &serde_json::json!({
                "withdrawal": format!("W{id}"),
                "database": database,
                "matched_rows": kept.matched_rows,
            }),
        )
        .await?;
        Ok(kept)
    }

    /// Every withdrawal, for custodians.
    pub async fn list_withdrawals(&self, actor: &str) -> Result<Vec<Withdrawal>, GovernanceError> {
        self.may(actor, Action::WithdrawConsent, "read consent withdrawals")
            .await?;
        let rows = sqlx::query(
            "SELECT id, database_name, research_id, matched_rows, recorded_by, recorded_at FROM consent_withdrawals ORDER BY id",
        )
        .fetch_all(self.db().pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Withdrawal {
                id: r.get("id"),
                database: r.get("database_name"),
                research_id: r.get("research_id"),
                matched_rows: r.get("matched_rows"),
                recorded_by: r.get("recorded_by"),
                recorded_at: r.get("recorded_at"),
            })
            .collect())
    }

    /// How many withdrawals there are: one cheap read per query, to know whether a project's
    /// views were built before the latest.
    pub async fn withdrawal_count(&self) -> Result<i64, GovernanceError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM consent_withdrawals")
                .fetch_one(self.db().pool())
                .await?,
        )
    }

    /// The withdrawn registrations, for building views.
    pub async fn withdrawals(&self) -> Result<Withdrawals, GovernanceError> {
        let research_ids: Vec<String> =
            sqlx::query_scalar("SELECT research_id FROM consent_withdrawals ORDER BY id")
                .fetch_all(self.db().pool())
                .await?;
        Ok(Withdrawals { research_ids })
    }

    /// Whether a withdrawal was recorded at or after `since` (RFC 3339, as every timestamp here).
    pub async fn withdrawn_since(&self, since: &str) -> Result<bool, GovernanceError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM consent_withdrawals WHERE recorded_at >= $1")
                .bind(since)
                .fetch_one(self.db().pool())
                .await?;
        Ok(n > 0)
    }
}
