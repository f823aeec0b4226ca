//! Recording a consent withdrawal (同意撤回): the registration's 研究用ID under the custodian
//! key, its rows in the store, the platform service's record. What it means for outputs held
//! before it is in `stale.rs`; for the views, in `views/withdrawn.rs`.

use niji_governance::Withdrawal;
use niji_governance::applications::risk::CONSENT_BASED;
use niji_pseudo::{IdHasher, IdKind, Registration, hex32};
use niji_store::Store;
use serde::Serialize;

use crate::views::{self, RegistrationRows};
use crate::{SandboxError, Visiting};

/// What recording a withdrawal found and kept.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WithdrawalReport {
    pub withdrawal: String,
    pub database: String,
    /// Stored rows of the registration (0 when it was recorded before its delivery).
    pub rows: u64,
    /// Persons those rows belong to, left out of every project from the next query on.
    pub persons: usize,
    pub recorded_at: String,
}

impl Visiting {
    /// Records that `registration` of `database` withdrew consent. The actor's permission is
    /// checked before the store is read, so that nobody else learns whether a registration
    /// is there. A registration with no stored row is refused unless `not_yet_delivered`: a
    /// mistyped name would otherwise withdraw nobody.
    pub async fn withdraw_consent(
        &self,
        actor: &str,
        database: &str,
        registration: &Registration,
        not_yet_delivered: bool,
    ) -> Result<WithdrawalReport, SandboxError> {
        self.platform.may_record_withdrawals(actor).await?;
        if !CONSENT_BASED.contains(&database) {
            return Err(SandboxError::Refused(format!(
                "{database} is not consent-based; withdrawals are recorded for {}",
                CONSENT_BASED.join(", ")
            )));
        }
        let hasher = IdHasher::new(&self.key, IdKind::ResearchId);
        let research_id = hex32(&registration.research_id(&hasher));
        let found = self
            .registration_rows(database, std::slice::from_ref(&research_id))
            .await?;
        if found.rows == 0 && !not_yet_delivered {
            return Err(SandboxError::Refused(format!(
                "no stored registration of {database} matches: check the kana name, sex, birth date and consent number, or record it as not yet delivered"
            )));
        }
        let Withdrawal {
            id, recorded_at, ..
        } = self
            .platform
            .record_withdrawal(actor, database, &research_id, found.rows)
            .await?;
        Ok(WithdrawalReport {
            withdrawal: format!("W{id}"),
            database: database.to_string(),
            rows: found.rows,
            persons: found.persons.len(),
            recorded_at,
        })
    }

    /// The rows of the registrations `research_ids` in `database`'s stored tables.
    async fn registration_rows(
        &self,
        database: &str,
        research_ids: &[String],
    ) -> Result<RegistrationRows, SandboxError> {
        let ctx = datafusion::prelude::SessionContext::new_with_config(views::session_config(
            &self.limits,
        ));
        views::registration_rows(
            &ctx,
            &Store::new(&self.settings.data_dir),
            &self.catalog,
            Some(database),
            research_ids,
        )
        .await
    }
}
