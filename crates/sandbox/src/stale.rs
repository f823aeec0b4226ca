//! Outputs a consent withdrawal may have made stale: held rows computed before it may hold the
//! withdrawn person. They are released only if their query, run again on the views as they are
//! now, gives the same rows and person sets; their rows are not shown to checkers meanwhile.

use arrow::array::RecordBatch;
use niji_governance::Output;

use super::*;

impl Visiting {
    /// Whether a withdrawal may have been recorded after `output`'s rows were computed. Its
    /// time is when it was kept, after its query ran: withdrawals within one query time
    /// limit before it count too.
    pub(crate) async fn made_before_a_withdrawal(
        &self,
        output: &Output,
    ) -> Result<bool, SandboxError> {
        let since = match niji_audit::parse_rfc3339(&output.created_at) {
            Some(at) => {
                let window = Duration::from_secs(self.limits.timeout_seconds.saturating_add(60));
                niji_audit::rfc3339(at.checked_sub(window).unwrap_or(std::time::UNIX_EPOCH))
            }
            // An unreadable time: assume the worst.
            None => niji_audit::rfc3339(std::time::UNIX_EPOCH),
        };
        Ok(self.platform.withdrawn_since(&since).await?)
    }

    /// Refuses to release `output`'s `held` rows when a withdrawal since may have changed
    /// them: `run_again` gives its rows in the project as it is now.
    pub(crate) async fn unchanged_by_withdrawals(
        &self,
        output: &Output,
        held: &[RecordBatch],
        run_again: impl std::future::Future<Output = Result<Vec<RecordBatch>, SandboxError>>,
    ) -> Result<(), SandboxError> {
        if !self.made_before_a_withdrawal(output).await? {
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
