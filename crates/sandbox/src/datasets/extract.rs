//! Anonymised record-level extracts (匿名加工) on the query side. Their query passes the
//! chokepoint like every other (scope, guard, views with withdrawals applied, limits, audit);
//! what judges its rows is not disclosure control, which releases no record, but the
//! anonymiser: rows leave the chokepoint only k-anonymised and checked again from their own
//! labels. Only niji's builder runs in a dataset's scope, and only the definition's query.

use std::path::{Path, PathBuf};

use niji_anonymise::Report;

use crate::chokepoint::QueryAudit;
use crate::views::ProjectEnv;
use crate::{QueryOutcome, QueryRequest, SandboxError, Scope, Visiting, outcome};

fn report_path(dir: &Path, version: &str) -> PathBuf {
    dir.join(format!("{version}.anonymisation.json"))
}

/// Keeps a version's report beside its files (atomically: whole or not at all).
pub(crate) fn write_report(dir: &Path, version: &str, report: &Report) -> Result<(), SandboxError> {
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_vec_pretty(report)
        .map_err(|e| SandboxError::Config(format!("writing the anonymisation report: {e}")))?;
    let tmp = dir.join(format!(".{version}.anonymisation.json.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, report_path(dir, version))?;
    Ok(())
}

pub(crate) fn read_report(dir: &Path, version: &str) -> Result<Option<Report>, SandboxError> {
    match std::fs::read(report_path(dir, version)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            SandboxError::Unavailable(format!("the anonymisation report of {version}: {e}"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Visiting {
    /// Whether queries in `scope` are judged by the anonymiser (an extract's build).
    pub(crate) fn is_record_level(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Dataset { name, .. } => self
                .standard
                .get(name)
                .is_some_and(|d| d.dataset.is_record_level()),
            _ => false,
        }
    }

    /// The release step of an extract's query: its rows anonymised as the definition and the
    /// policy say, or nothing.
    pub(crate) async fn anonymise(
        &self,
        env: &ProjectEnv,
        req: &QueryRequest,
        plan: datafusion::logical_expr::LogicalPlan,
        audit: &mut QueryAudit<'_>,
    ) -> Result<QueryOutcome, SandboxError> {
        let Scope::Dataset { name, .. } = &req.scope else {
            return Err(SandboxError::Refused(
                "only an extract's build is anonymised".into(),
            ));
        };
        let spec = self
            .definition(name)?
            .dataset
            .anonymisation
            .as_ref()
            .ok_or_else(|| SandboxError::Refused(format!("{name} is not an extract")))?;
        let (schema, batches, _) = self.execute(env, plan).await?;
        let input = arrow::compute::concat_batches(&schema, &batches)
            .map_err(datafusion::error::DataFusionError::from)?;
        // Seconds of work at national scale: on a blocking thread, not a worker of the
        // runtime that answers other requests.
        let span = tracing::info_span!("anonymise", dataset = %name, records = input.num_rows());
        let (spec, policy) = (spec.clone(), self.anonymisation.clone());
        let extract = tokio::task::spawn_blocking(move || {
            span.in_scope(|| niji_anonymise::anonymise(&input, &spec, &policy))
        })
        .await
        .map_err(|e| SandboxError::Unavailable(format!("the anonymiser stopped: {e}")))??;
        let report = extract.report;
        let batch = extract.batch;
        audit.rows = batch.num_rows();
        audit.suppressed = usize::try_from(report.cells_suppressed).unwrap_or(usize::MAX);
        audit.result_digest = outcome::digest(&batch.schema(), std::slice::from_ref(&batch))?;
        let mut released = QueryOutcome::released(batch, Vec::new(), false);
        released.message = format!(
            "{} of {} records anonymised to k = {} (smallest group {}); {} records and {} values suppressed",
            report.records_out,
            report.records_in,
            report.k,
            report.k_reached,
            report.records_suppressed,
            report.cells_suppressed
        );
        released.anonymised = Some(report);
        Ok(released)
    }

    /// The anonymisation report of `name`'s current version, if it is an extract built at the
    /// current data.
    pub async fn extract_report(&self, name: &str) -> Result<Option<Report>, SandboxError> {
        if !self.definition(name)?.dataset.is_record_level() {
            return Ok(None);
        }
        let version = self.dataset_data_version(name).await?;
        read_report(&self.dataset_dir(name), &version)
    }
}
