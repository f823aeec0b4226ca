//! Recording a consent withdrawal (同意撤回): the registration's 研究用ID under the custodian
//! key, its rows in the store, the platform service's record. And what a withdrawal means for
//! outputs held before it: released only if their query, run again, gives the same rows.

use arrow::array::RecordBatch;
use niji_governance::Withdrawal;
use niji_pseudo::{IdHasher, IdKind, Registration, hex32};
use niji_store::Store;
use serde::Serialize;

use crate::views::{self, RegistrationRows};
use crate::{SandboxError, Visiting};

/// What recording a withdrawal found and kept.
#[derive(Debug, Clone, Serialize)]
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
        let mut catalog = (*self.catalog).clone();
        catalog.databases.retain(|name, _| name == database);
        let ctx = datafusion::prelude::SessionContext::new_with_config(views::session_config(
            &self.limits,
        ));
        views::registration_rows(
            &ctx,
            &Store::new(&self.settings.data_dir),
            &catalog,
            research_ids,
        )
        .await
    }

    /// Refuses to release a held output whose rows a withdrawal recorded since it was made
    /// changed: `run_again` gives its rows in the project as it is now.
    pub(crate) async fn unchanged_by_withdrawals(
        &self,
        created_at: &str,
        held: &[RecordBatch],
        run_again: impl std::future::Future<Output = Result<Vec<RecordBatch>, SandboxError>>,
    ) -> Result<(), SandboxError> {
        if !self.platform.withdrawn_since(created_at).await? {
            return Ok(());
        }
        if sorted_rows(held)? != sorted_rows(&run_again.await?)? {
            return Err(SandboxError::Refused(
                "a person in this output has withdrawn consent since it was made: run its query again"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Every row as its cells' text, sorted: results compared whatever order they came in. The
/// cells' facility sets are left out: they are kept in no fixed order, and a withdrawn person's
/// rows show in the values and person sets anyway.
fn sorted_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, SandboxError> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("\u{0}");
    let mut rows = Vec::new();
    for b in batches {
        let schema = b.schema();
        let formatters = b
            .columns()
            .iter()
            .zip(schema.fields())
            .filter(|(_, f)| !f.name().starts_with(niji_disclosure::FACILITY))
            .map(|(c, _)| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SandboxError::Engine(e.into()))?;
        for i in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    rows.sort();
    Ok(rows)
}
