//! A standard dataset's file, the same bytes for every build of a data version: rows ordered
//! by every grouping item, a `masked` column naming each row's masked cells, and fixed writer
//! settings (no timestamps, no host names) for Parquet and CSV.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use niji_catalog::standard::{MASKED_COLUMN, StandardDataset};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::SandboxError;
use crate::outcome::QueryOutcome;

/// How a dataset is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatasetFormat {
    Parquet,
    Csv,
    /// Arrow record batches over Flight SQL, read from the Parquet file (whose digest the
    /// delivery records).
    Flight,
}

impl DatasetFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetFormat::Parquet => "parquet",
            DatasetFormat::Csv => "csv",
            DatasetFormat::Flight => "flight",
        }
    }

    /// The kept file it is read from.
    pub(crate) fn file(self) -> DatasetFormat {
        match self {
            DatasetFormat::Csv => DatasetFormat::Csv,
            DatasetFormat::Parquet | DatasetFormat::Flight => DatasetFormat::Parquet,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "parquet" => Some(DatasetFormat::Parquet),
            "csv" => Some(DatasetFormat::Csv),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            DatasetFormat::Parquet | DatasetFormat::Flight => "application/vnd.apache.parquet",
            DatasetFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The released rows in file order, with the `masked` column, and how many cells are masked.
#[derive(Debug)]
pub(crate) struct DatasetTable {
    pub(crate) batch: RecordBatch,
    pub(crate) cells_masked: usize,
}

impl DatasetTable {
    /// From a released outcome of the definition's query: its columns must be exactly the
    /// definition's items, in order.
    pub(crate) fn from_outcome(
        def: &StandardDataset,
        outcome: &QueryOutcome,
    ) -> Result<Self, SandboxError> {
        let schema = outcome
            .schema
            .clone()
            .ok_or_else(|| SandboxError::Refused(format!("{} gave no result", def.name)))?;
        let got: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let items = def.items();
        let want: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        if got != want {
            // Names from the plan, not values: the custodian may see them.
            return Err(SandboxError::Refused(format!(
                "the query of {} gives columns {got:?}, its definition names {want:?}",
                def.name
            )));
        }
        let batch = arrow::compute::concat_batches(&schema, &outcome.batches)
            .map_err(datafusion::error::DataFusionError::from)?;
        let rows = batch.num_rows();
        let mut masked: Vec<Vec<&str>> = vec![Vec::new(); rows];
        for cell in &outcome.suppressed {
            if let Some(row) = masked.get_mut(cell.row) {
                row.push(cell.column.as_str());
            }
        }
        // Named in the file's column order, each once.
        let order = |name: &str| want.iter().position(|w| *w == name).unwrap_or(usize::MAX);
        let masked: Vec<String> = masked
            .into_iter()
            .map(|mut names| {
                names.sort_by_key(|n| order(n));
                names.dedup();
                names.join(",")
            })
            .collect();
        let cells_masked = masked
            .iter()
            .map(|m| {
                if m.is_empty() {
                    0
                } else {
                    m.split(',').count()
                }
            })
            .sum();
        let mut fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        fields.push(Field::new(MASKED_COLUMN, DataType::Utf8, false));
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from(masked)));
        let unordered = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(datafusion::error::DataFusionError::from)?;
        let sort: Vec<SortColumn> = (0..unordered.num_columns())
            .map(|i| SortColumn {
                values: unordered.column(i).clone(),
                options: Some(SortOptions {
                    descending: false,
                    nulls_first: true,
                }),
            })
            .collect();
        let arrow = |e: arrow::error::ArrowError| datafusion::error::DataFusionError::from(e);
        // Every column, grouping items first: rows are unique by their groups, and the rest
        // only settles ties that cannot occur.
        let indices = lexsort_to_indices(&sort, None).map_err(arrow)?;
        let columns = unordered
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow)?;
        let batch = RecordBatch::try_new(unordered.schema(), columns).map_err(arrow)?;
        Ok(Self {
            batch,
            cells_masked,
        })
    }
}

impl DatasetTable {
    /// An extract's records as the anonymiser left them (ordered, numbered, checked); its
    /// suppressed values are counted as masked cells.
    pub(crate) fn anonymised(
        outcome: &QueryOutcome,
        report: &niji_anonymise::Report,
    ) -> Result<Self, SandboxError> {
        let schema = outcome
            .schema
            .clone()
            .ok_or_else(|| SandboxError::Refused("the extract gave no result".into()))?;
        let batch = arrow::compute::concat_batches(&schema, &outcome.batches)
            .map_err(datafusion::error::DataFusionError::from)?;
        Ok(Self {
            batch,
            cells_masked: usize::try_from(report.cells_suppressed).unwrap_or(usize::MAX),
        })
    }
}

/// Where a version's file of `format` is kept.
pub(crate) fn path_of(dir: &Path, version: &str, format: DatasetFormat) -> PathBuf {
    dir.join(format!("{version}.{}", format.file().as_str()))
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parquet_bytes(name: &str, version: &str, batch: &RecordBatch) -> Result<Vec<u8>, SandboxError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_created_by(format!("niji {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("niji.dataset".to_string(), name.to_string()),
            KeyValue::new("niji.version".to_string(), version.to_string()),
        ]))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

fn csv_bytes(batch: &RecordBatch) -> Result<Vec<u8>, SandboxError> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let csv_error = |e: csv::Error| SandboxError::Config(format!("writing CSV: {e}"));
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    writer.write_record(&names).map_err(csv_error)?;
    let options = FormatOptions::default().with_null("");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(datafusion::error::DataFusionError::from)?;
    let mut record = Vec::with_capacity(formatters.len());
    for row in 0..batch.num_rows() {
        record.clear();
        record.extend(formatters.iter().map(|f| f.value(row).to_string()));
        writer.write_record(&record).map_err(csv_error)?;
    }
    writer
        .into_inner()
        .map_err(|e| SandboxError::Config(format!("writing CSV: {e}")))
}

/// Writes both files of a version atomically (each in full or not at all) and returns their
/// SHA-256 digests, Parquet first.
pub(crate) fn write_files(
    dir: &Path,
    name: &str,
    version: &str,
    table: &DatasetTable,
) -> Result<(String, String), SandboxError> {
    std::fs::create_dir_all(dir)?;
    let parquet = parquet_bytes(name, version, &table.batch)?;
    let csv = csv_bytes(&table.batch)?;
    for (format, bytes) in [
        (DatasetFormat::Parquet, &parquet),
        (DatasetFormat::Csv, &csv),
    ] {
        let path = path_of(dir, version, format);
        let tmp = dir.join(format!(".{version}.{}.tmp", format.as_str()));
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok((sha256_hex(&parquet), sha256_hex(&csv)))
}
