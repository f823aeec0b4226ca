//! The public dashboard's data: the newest built version of each count table a custodian
//! published. Records (anonymised extracts) are never published.

use niji_governance::DatasetVersion;

use super::DatasetFormat;
use super::file;
use crate::{SandboxError, Visiting};

/// A published dataset as the dashboard draws it: released cells only, masked ones null.
#[derive(Debug, Clone)]
pub struct PublishedTable {
    pub version: DatasetVersion,
    pub schema: arrow::datatypes::SchemaRef,
    pub batches: Vec<arrow::array::RecordBatch>,
}

impl Visiting {
    /// Publishes (or withdraws) a count table on the public dashboard (custodians).
    pub async fn publish_dataset(
        &self,
        actor: &str,
        name: &str,
        published: bool,
    ) -> Result<(), SandboxError> {
        if self.definition(name)?.dataset.is_record_level() {
            return Err(SandboxError::Refused(format!(
                "{name} is an anonymised record-level extract: records are never published"
            )));
        }
        Ok(self.platform.set_published(actor, name, published).await?)
    }

    /// The published datasets, for anyone.
    pub async fn published_datasets(&self) -> Result<Vec<String>, SandboxError> {
        Ok(self.platform.published_datasets().await?)
    }

    /// The newest built version of a published dataset (none if it was never built); for
    /// anyone, signed in or not.
    pub async fn published_table(
        &self,
        name: &str,
    ) -> Result<Option<PublishedTable>, SandboxError> {
        let published = self.platform.published_datasets().await?;
        if !published.iter().any(|p| p == name)
            || self.offered(name) != niji_governance::Offered::Counts
        {
            return Err(SandboxError::Refused(format!(
                "{name} is not on the dashboard"
            )));
        }
        let Some(version) = self
            .platform
            .dataset_versions(name)
            .await?
            .into_iter()
            .max_by(|a, b| a.built_at.cmp(&b.built_at))
        else {
            return Ok(None);
        };
        let path = file::path_of(
            &self.dataset_dir(name),
            &version.version,
            DatasetFormat::Parquet,
        );
        let bytes = std::fs::read(path)?;
        if file::sha256_hex(&bytes) != version.parquet_sha256 {
            return Err(SandboxError::Unavailable(format!(
                "the file of {name} {} does not match its record",
                version.version
            )));
        }
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes),
        )?
        .build()?;
        let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(datafusion::error::DataFusionError::from)?;
        Ok(Some(PublishedTable {
            version,
            schema,
            batches,
        }))
    }
}
