//! What a query gives back, and how results are kept (held results, workspace tables).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use sha2::{Digest, Sha256};

use niji_disclosure::SuppressedCell;

use crate::SandboxError;
use crate::error::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Dummy data, or a statement such as a workspace write: the rows (if any) are here.
    Ok,
    /// Real data: kept inside until disclosure control passes it.
    Held,
    Released,
    Suppressed,
    Refused,
    Error,
}

impl Status {
    /// The name the JSON outcome uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Held => "held",
            Status::Released => "released",
            Status::Suppressed => "suppressed",
            Status::Refused => "refused",
            Status::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

#[derive(Debug, Clone)]
pub struct QueryOutcome {
    pub query_id: String,
    pub status: Status,
    pub schema: Option<SchemaRef>,
    /// Only for `Ok`: the rows themselves.
    pub batches: Vec<RecordBatch>,
    /// Rows shown: none for an outcome that shows none (held, refused, failed), which never
    /// tells how many rows it would have had.
    pub row_count: Option<usize>,
    pub message: String,
    /// Cells masked by disclosure control (null in the rows), with the reason.
    pub suppressed: Vec<SuppressedCell>,
    /// Whether this result leaves out rows of groups resting on too few persons. Set by its
    /// shape (group keys over persons), not by whether it had any: that, like how many, would
    /// itself disclose that a small group exists.
    pub small_groups_withheld: bool,
    /// Where counts are rounded: each count column's total over its released rounded cells.
    pub totals: Vec<(String, i64)>,
    /// For a refused or failed query, what kind of failure it was (its status on each
    /// interface); none for an answer, held or not.
    pub failure: Option<Failure>,
    /// For an anonymised extract's build: what the anonymisation reached and lost.
    pub anonymised: Option<niji_anonymise::Report>,
}

/// The one cell of a one-row, one-column count, if that is what `outcome` holds.
pub(crate) fn single_count(outcome: &QueryOutcome) -> Option<u64> {
    let batch = outcome.batches.iter().find(|b| b.num_rows() > 0)?;
    let cast = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::UInt64).ok()?;
    let values = arrow::array::AsArray::as_primitive::<arrow::datatypes::UInt64Type>(&cast);
    (batch.num_rows() == 1 && arrow::array::Array::is_valid(values, 0)).then(|| values.value(0))
}

pub fn new_query_id() -> String {
    let mut raw = [0u8; 8];
    if getrandom::fill(&mut raw).is_err() {
        // The id only has to be unique in the log; the clock is a fallback.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        raw = (nanos as u64).to_be_bytes();
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

impl QueryOutcome {
    /// Names and types of the result's columns (none for an outcome without a result).
    pub fn columns(&self) -> Vec<ColumnInfo> {
        self.schema.as_deref().map(columns_of).unwrap_or_default()
    }
}

fn columns_of(schema: &Schema) -> Vec<ColumnInfo> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnInfo {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect()
}

impl QueryOutcome {
    pub fn rows(schema: SchemaRef, batches: Vec<RecordBatch>, rows: usize) -> Self {
        Self {
            query_id: String::new(),
            status: Status::Ok,
            schema: Some(schema),
            batches,
            row_count: Some(rows),
            message: format!("{rows} rows (dummy data)"),
            suppressed: Vec::new(),
            small_groups_withheld: false,
            totals: Vec::new(),
            failure: None,
            anonymised: None,
        }
    }

    /// A held result's rows, as output checkers (and only they) see them.
    pub fn held_rows(schema: SchemaRef, batches: Vec<RecordBatch>, rows: usize) -> Self {
        Self {
            status: Status::Held,
            message: format!("{rows} rows held; shown to output checkers only"),
            batches,
            ..Self::rows(schema, Vec::new(), rows)
        }
    }

    /// A real-data result kept inside: `why` says what stopped it (never how many rows).
    pub fn held(schema: SchemaRef, why: &str) -> Self {
        Self {
            query_id: String::new(),
            status: Status::Held,
            schema: Some(schema),
            batches: Vec::new(),
            row_count: None,
            message: format!(
                "held in the project workspace: {why}; output checkers cannot waive this, so change the query so that it can be checked"
            ),
            suppressed: Vec::new(),
            small_groups_withheld: false,
            totals: Vec::new(),
            failure: None,
            anonymised: None,
        }
    }

    /// A real-data result that passed disclosure control, some cells perhaps masked and some
    /// rows perhaps withheld.
    pub fn released(
        batch: RecordBatch,
        suppressed: Vec<SuppressedCell>,
        small_groups_withheld: bool,
    ) -> Self {
        let rows = batch.num_rows();
        let mut message = format!("{rows} rows released");
        if !suppressed.is_empty() {
            message.push_str(&format!(
                "; {} cells suppressed (null), reasons in `suppressed`",
                suppressed.len()
            ));
        }
        if small_groups_withheld {
            message.push_str(
                "; rows of groups resting on too few persons are never shown (whether there were any is not told)",
            );
        }
        let status = if suppressed.is_empty() {
            Status::Released
        } else {
            Status::Suppressed
        };
        Self {
            query_id: String::new(),
            status,
            schema: Some(batch.schema()),
            batches: vec![batch],
            row_count: Some(rows),
            message,
            suppressed,
            small_groups_withheld,
            totals: Vec::new(),
            failure: None,
            anonymised: None,
        }
    }

    /// Totals recomputed from rounded cells, for the outcome to show beside them.
    pub fn with_totals(mut self, totals: Vec<(String, i64)>) -> Self {
        self.totals = totals;
        self
    }

    pub fn message(message: String) -> Self {
        Self {
            query_id: String::new(),
            status: Status::Ok,
            schema: None,
            batches: Vec::new(),
            row_count: None,
            message,
            suppressed: Vec::new(),
            small_groups_withheld: false,
            totals: Vec::new(),
            failure: None,
            anonymised: None,
        }
    }

    /// The outcome of a query that `error` stopped.
    pub fn failed(query_id: String, error: &SandboxError) -> Self {
        Self {
            query_id,
            status: error.status(),
            failure: Some(error.failure()),
            anonymised: None,
            schema: None,
            batches: Vec::new(),
            row_count: None,
            message: error.public_message(),
            suppressed: Vec::new(),
            small_groups_withheld: false,
            totals: Vec::new(),
        }
    }

    /// One JSON object: `status`, `query_id`, `columns`, `rows` (arrays in column order),
    /// `row_count` (only where rows are shown), `message`, `suppressed` (row, column, reason of
    /// each masked cell), `small_groups_withheld`, `totals` (column → total of its rounded cells, where
    /// counts are rounded).
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = self.summary_json();
        json["rows"] = serde_json::Value::Array(self.json_rows());
        json
    }

    /// [`Self::to_json`] without `rows`: what a Flight SQL client gets beside the stream.
    pub fn summary_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "status": self.status,
            "query_id": self.query_id,
            "columns": self.columns(),
            "message": self.message,
            "suppressed": self.suppressed,
            "small_groups_withheld": self.small_groups_withheld,
            "totals": self
                .totals
                .iter()
                .map(|(column, total)| (column.clone(), serde_json::Value::from(*total)))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
        });
        if let Some(rows) = self.row_count {
            json["row_count"] = rows.into();
        }
        json
    }

    /// The rows as arrays in column order.
    fn json_rows(&self) -> Vec<serde_json::Value> {
        if self.batches.is_empty() {
            return Vec::new();
        }
        let columns = self.columns();
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        let refs: Vec<&RecordBatch> = self.batches.iter().collect();
        let objects: Vec<serde_json::Map<String, serde_json::Value>> = writer
            .write_batches(&refs)
            .ok()
            .and_then(|_| writer.finish().ok())
            .and_then(|_| serde_json::from_slice(&writer.into_inner()).ok())
            .unwrap_or_default();
        objects
            .into_iter()
            .map(|mut o| {
                serde_json::Value::Array(
                    columns
                        .iter()
                        .map(|c| o.remove(&c.name).unwrap_or(serde_json::Value::Null))
                        .collect(),
                )
            })
            .collect()
    }

    /// The rows as a text table (or the message, and the query id to quote, when there are
    /// none).
    pub fn to_table(&self) -> String {
        if self.batches.is_empty() {
            let mut text = format!("{}: {}", self.status.as_str(), self.message);
            if !self.query_id.is_empty() {
                text.push_str(&format!(" (query {})", self.query_id));
            }
            return text;
        }
        let mut out = match arrow::util::pretty::pretty_format_batches(&self.batches) {
            Ok(t) => format!("{t}\n{}", self.message),
            Err(_) => self.message.clone(),
        };
        for c in &self.suppressed {
            out.push_str(&format!("\nrow {} {}: {}", c.row + 1, c.column, c.reason));
        }
        for (column, total) in &self.totals {
            out.push_str(&format!(
                "\ntotal of {column} (sum of the rounded cells): {total}"
            ));
        }
        out
    }
}

struct HashingWriter(Sha256);

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SHA-256 of the result as an Arrow IPC stream: the same rows give the same digest.
pub fn digest(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String, SandboxError> {
    let mut w = arrow::ipc::writer::StreamWriter::try_new(HashingWriter(Sha256::new()), schema)
        .map_err(|e| SandboxError::Engine(e.into()))?;
    for b in batches {
        w.write(b).map_err(|e| SandboxError::Engine(e.into()))?;
    }
    w.finish().map_err(|e| SandboxError::Engine(e.into()))?;
    let inner = w.into_inner().map_err(|e| SandboxError::Engine(e.into()))?;
    Ok(niji_pseudo::hex32(&inner.0.finalize().into()))
}

/// Writes `<dir>/<name>.parquet` atomically: a hidden temporary file renamed into place, so a
/// reader (or a crash) never sees half a table.
pub fn write_parquet(
    dir: &Path,
    name: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), SandboxError> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(schema), Some(props))?;
    for b in batches {
        writer.write(b)?;
    }
    writer.into_inner()?.sync_all()?;
    std::fs::rename(&tmp, dir.join(format!("{name}.parquet")))?;
    Ok(())
}

/// Reads a table written by [`write_parquet`].
pub fn read_parquet(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), SandboxError> {
    let file = std::fs::File::open(path)?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SandboxError::Engine(e.into()))?;
    Ok((schema, batches))
}

/// `schema` with every column nullable: the checked plan's schema as the executed plan has it,
/// where expressions made total give NULL (`niji_disclosure::total`).
pub fn nullable(schema: &Schema) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The researcher's columns of a shadow result (its first columns), under their own schema.
pub fn visible_part(
    batches: &[RecordBatch],
    visible: &SchemaRef,
) -> Result<Vec<RecordBatch>, SandboxError> {
    let researchers: Vec<usize> = (0..visible.fields().len()).collect();
    batches
        .iter()
        .map(|b| {
            b.project(&researchers)
                .and_then(|b| b.with_schema(visible.clone()))
                .map_err(|e| SandboxError::Engine(e.into()))
        })
        .collect()
}
