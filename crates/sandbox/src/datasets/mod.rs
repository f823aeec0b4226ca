//! Standard datasets on the query side. A build runs the custodian's definition through the
//! chokepoint in its own scope ([`Scope::Dataset`]): the same guard, views (consent
//! withdrawals applied), limits, disclosure control and audit as a researcher's query, with the
//! dataset's own release ledger across versions. Each data version is built once into files
//! kept under `data/standard/<name>/`; every requester of that version gets their bytes.

mod dashboard;
mod extract;
mod file;
mod version;

use niji_catalog::standard::{Definition, StandardDatasets};
use niji_governance::{DATASET_BUILDER, DatasetVersion, Offered, ProjectSpec};

pub use dashboard::PublishedTable;
pub use file::DatasetFormat;
use file::DatasetTable;

use crate::{Mode, QueryRequest, SandboxError, Scope, Status, Visiting};

/// A dataset's file as handed to one requester (for Flight, the Parquet file the batches are
/// read from: see [`Delivery::batches`]).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub version: DatasetVersion,
    /// The request that allowed it.
    pub request: String,
    pub format: DatasetFormat,
    pub bytes: Vec<u8>,
    pub sha256: String,
}

impl Delivery {
    /// The rows of a Parquet (or Flight) delivery as Arrow batches.
    pub fn batches(
        &self,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>), SandboxError> {
        let bytes = bytes::Bytes::from(self.bytes.clone());
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?
            .build()?;
        let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(datafusion::error::DataFusionError::from)?;
        Ok((schema, batches))
    }
}

/// The views a definition may read, as the spec of a project no one is a member of.
fn spec_of(definition: &Definition) -> ProjectSpec {
    let d = &definition.dataset;
    ProjectSpec {
        // The scope's key: no project id has a ':', so neither views nor slots are shared.
        id: format!("standard:{}", d.name),
        title: d.title_en.clone(),
        expires: "9999-12-31".into(),
        tables: d
            .tables
            .iter()
            .map(|t| niji_governance::ApprovedTable {
                table: t.table.clone(),
                columns: t.columns.clone(),
            })
            .collect(),
        period: None,
        cohort: None,
        linkage: d.linkage.clone(),
        members: Vec::new(),
        min_persons: d.min_persons,
    }
}

impl Visiting {
    /// The definitions in `catalog/standard/`.
    pub fn standard_datasets(&self) -> &StandardDatasets {
        &self.standard
    }

    fn definition(&self, name: &str) -> Result<&Definition, SandboxError> {
        self.standard
            .get(name)
            .ok_or_else(|| SandboxError::Refused(format!("no standard dataset {name:?}")))
    }

    /// The spec a dataset's build runs under. Only niji's builder runs in a dataset's scope:
    /// who asked for the build was checked before (see [`Self::build_dataset`]).
    pub(crate) async fn dataset_spec(
        &self,
        user: &str,
        name: &str,
        mode: Mode,
    ) -> Result<ProjectSpec, SandboxError> {
        if user != DATASET_BUILDER {
            return Err(SandboxError::Denied(format!(
                "queries in {} (niji builds it)",
                Scope::dataset(name)
            )));
        }
        if mode != Mode::Real {
            return Err(SandboxError::Refused(
                "a standard dataset is built from real data only".into(),
            ));
        }
        Ok(spec_of(self.definition(name)?))
    }

    /// Opens `name` to every approved organisation. Never an anonymised extract: records,
    /// however anonymised, go only where one committee member signed off the purpose.
    pub async fn open_dataset(&self, actor: &str, name: &str) -> Result<(), SandboxError> {
        self.platform.may_manage_datasets(actor).await?;
        if self.definition(name)?.dataset.is_record_level() {
            return Err(SandboxError::Refused(format!(
                "{name} is an anonymised record-level extract: each request is signed off"
            )));
        }
        Ok(self.platform.open_dataset(actor, name).await?)
    }

    /// What `name` is, for a request on the fast track.
    pub fn offered(&self, name: &str) -> Offered {
        match self.standard.get(name) {
            None => Offered::Nothing,
            Some(d) if d.dataset.is_record_level() => Offered::Records,
            Some(_) => Offered::Counts,
        }
    }

    /// The data version `name` would be built at now.
    pub async fn dataset_data_version(&self, name: &str) -> Result<String, SandboxError> {
        let definition = self.definition(name)?;
        let withdrawals = self.platform.withdrawals().await?;
        let policy = if definition.dataset.is_record_level() {
            &self.anonymisation_text
        } else {
            &self.disclosure_text
        };
        version::data_version(definition, policy, &self.settings.data_dir, &withdrawals)
    }

    /// Builds `name` at the current data version for a custodian (or returns the version
    /// already built).
    pub async fn build_dataset(
        &self,
        actor: &str,
        name: &str,
    ) -> Result<DatasetVersion, SandboxError> {
        self.platform.may_manage_datasets(actor).await?;
        self.build_current(actor, name).await.inspect_err(
            |e| tracing::error!(error = %e, dataset = name, "building a standard dataset failed"),
        )
    }

    fn dataset_dir(&self, name: &str) -> std::path::PathBuf {
        self.settings.data_dir.join("standard").join(name)
    }

    /// The version of `name` for the current data, built now if it was not. Builds take turns,
    /// so that two requests for a new version build it once.
    async fn build_current(
        &self,
        builder: &str,
        name: &str,
    ) -> Result<DatasetVersion, SandboxError> {
        let definition = self.definition(name)?;
        let _one_at_a_time = self.dataset_builds.lock().await;
        let version = self.dataset_data_version(name).await?;
        let dir = self.dataset_dir(name);
        let known = self.platform.dataset_version(name, &version).await?;
        if let Some(known) = &known
            && self.files_match(&dir, known)?
            && (!definition.dataset.is_record_level()
                || extract::read_report(&dir, &known.version)?.is_some())
        {
            return Ok(known.clone());
        }
        // The query runs as niji's builder whoever asked: its entries are the dataset's, not
        // the custodian's own queries.
        let outcome = self
            .query(&QueryRequest {
                user: DATASET_BUILDER.to_string(),
                scope: Scope::dataset(name),
                mode: Mode::Real,
                sql: definition.dataset.sql.clone(),
                via: "dataset",
            })
            .await;
        if !matches!(outcome.status, Status::Released | Status::Suppressed) {
            return Err(SandboxError::Refused(format!(
                "building {name} (query {}): {}",
                outcome.query_id, outcome.message
            )));
        }
        let table = match &outcome.anonymised {
            Some(report) => DatasetTable::anonymised(&outcome, report)?,
            None => DatasetTable::from_outcome(&definition.dataset, &outcome)?,
        };
        let (parquet_sha256, csv_sha256) = file::write_files(&dir, name, &version, &table)?;
        // Files lost or damaged since: made again, they must be the bytes handed out before.
        if let Some(known) = &known
            && (known.parquet_sha256 != parquet_sha256 || known.csv_sha256 != csv_sha256)
        {
            return Err(SandboxError::Unavailable(format!(
                "{name} {version} was built again with other bytes than recorded"
            )));
        }
        // Beside files that match their record only.
        if let Some(report) = &outcome.anonymised {
            extract::write_report(&dir, &version, report)?;
        }
        if let Some(known) = known {
            return Ok(known);
        }
        let built = DatasetVersion {
            name: name.to_string(),
            version,
            built_at: niji_audit::now_rfc3339(),
            built_by: builder.to_string(),
            rows_released: i64::try_from(table.batch.num_rows()).unwrap_or(i64::MAX),
            cells_masked: i64::try_from(table.cells_masked).unwrap_or(i64::MAX),
            parquet_sha256,
            csv_sha256,
        };
        Ok(self.platform.record_dataset_version(&built).await?)
    }

    /// Whether both files of `known` are there with the recorded digests.
    fn files_match(
        &self,
        dir: &std::path::Path,
        known: &DatasetVersion,
    ) -> Result<bool, SandboxError> {
        for (format, digest) in [
            (DatasetFormat::Parquet, &known.parquet_sha256),
            (DatasetFormat::Csv, &known.csv_sha256),
        ] {
            match std::fs::read(file::path_of(dir, &known.version, format)) {
                Ok(bytes) if file::sha256_hex(&bytes) == *digest => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Hands `name` at the current data version to `actor`, whose granted request must cover
    /// it (checked before anything is built or read); the delivery is audited with the
    /// request, version, format and digest.
    pub async fn deliver_dataset(
        &self,
        actor: &str,
        name: &str,
        format: DatasetFormat,
    ) -> Result<Delivery, SandboxError> {
        let request = self.platform.may_download_dataset(actor, name).await?;
        let version = self
            .build_current(DATASET_BUILDER, name)
            .await
            .inspect_err(|e| tracing::error!(error = %e, dataset = name, "building a standard dataset failed"))?;
        let bytes = std::fs::read(file::path_of(
            &self.dataset_dir(name),
            &version.version,
            format,
        ))?;
        let sha256 = file::sha256_hex(&bytes);
        let recorded = match format.file() {
            DatasetFormat::Csv => &version.csv_sha256,
            _ => &version.parquet_sha256,
        };
        if sha256 != *recorded {
            return Err(SandboxError::Unavailable(format!(
                "the file of {name} {} does not match its record",
                version.version
            )));
        }
        self.platform
            .record_dataset_delivery(actor, &request, &version, format.as_str(), &sha256)
            .await?;
        Ok(Delivery {
            version,
            request: request.id,
            format,
            bytes,
            sha256,
        })
    }
}
