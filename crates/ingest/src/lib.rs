//! `niji ingest`: raw extracts (CSV, UTF-8 or CP932) → pseudonymised Parquet in the store.
//!
//! For each table the catalog describes: the header must match the catalog (fail closed);
//! every row is decoded, validated and normalised; direct identifiers are used for the keyed
//! identifiers (ID1, ID2, ID5, 研究用ID) and then dropped; bad rows go to a quarantine file
//! (custodian-only, beside the store, never inside it) with a reason that names the column but
//! not the value. Tables are published atomically with a manifest. The insured-number history
//! is ingested first: it decides every person's ID5 and registry index.

mod ceilings;
mod cluster;
mod facility;
pub mod linkage;
pub mod linkage_report;
pub mod parents;
mod strata;
pub mod synthetic;
pub mod table;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use niji_catalog::{Catalog, Table};
use niji_pseudo::{CustodianKey, IdHasher, IdKind};
use niji_store::FACILITY_MARK_COLUMN;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use linkage::Id5Resolver;
use niji_store::Registry;
use niji_store::{FieldInfo, Manifest, PartInfo, Store, hex};
use table::{Counts, Hashers, Linkage, Rejected, TablePlan};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] niji_store::StoreError),
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(
        "table {table}: the extract's header does not match the catalog (not described: [{unknown}]; missing: [{missing}])"
    )]
    HeaderMismatch {
        table: String,
        unknown: String,
        missing: String,
    },
    #[error("bad header: {0}")]
    BadHeader(String),
    #[error("the store was made with custodian key {store}, but the key file is {key}")]
    KeyMismatch { store: String, key: String },
    #[error("store is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0} has not been ingested")]
    NotIngested(String),
    #[error("--only {0}: no such database or table in the catalog")]
    UnknownSelection(String),
    #[error("truth file: {0}")]
    Truth(String),
    #[error("synthetic delivery: {0}")]
    Synthetic(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Settings of one ingest run.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub raw: PathBuf,
    pub data_dir: PathBuf,
    /// Bytes of extract per chunk; each chunk becomes one Parquet part.
    pub chunk_bytes: usize,
    /// Only these tables, as `db` or `db.table` (all when empty). The insured-number history
    /// is always read, since it decides ID5.
    pub only: Vec<String>,
    /// Bytes of parsed rows a table holds in memory while it is clustered; chunks beyond it
    /// go to spill files beside the staged table.
    pub memory_budget: usize,
    /// Rows a clustered table sorts together (a unit per core at a time): consecutive ranges
    /// of persons of one fiscal year. Parts are cut within a unit.
    pub sort_rows: u64,
}

/// What a table holds in memory while clustered, unless told otherwise: a month of NDB
/// outpatient receipts spills; a prefecture's does not.
pub const DEFAULT_MEMORY_BUDGET: usize = 4 << 30;

impl IngestOptions {
    pub fn new(raw: PathBuf, data_dir: PathBuf) -> Self {
        Self {
            raw,
            data_dir,
            chunk_bytes: 8 << 20,
            only: Vec::new(),
            memory_budget: DEFAULT_MEMORY_BUDGET,
            sort_rows: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum TableStatus {
    Ingested,
    /// The catalog describes it but the delivery has no such file.
    Absent,
    /// Not ingested, for the reason given (no values in it).
    Refused(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub database: String,
    pub table: String,
    pub status: TableStatus,
    pub counts: Counts,
    pub parts: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub content_digest: Option<String>,
    /// Chunks that went to spill files while the table was clustered (the memory budget was
    /// full).
    pub spilled_chunks: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub key_version: String,
    pub tables: Vec<TableReport>,
    /// Files in the delivery that no catalog table describes; they were not read.
    pub undescribed_files: Vec<String>,
    pub persons_in_registry: u64,
    pub persons_added: u64,
    pub insured_numbers_in_history: u64,
    pub stale_staging_removed: usize,
    pub seconds: f64,
}

impl IngestReport {
    pub fn table(&self, database: &str, table: &str) -> Option<&TableReport> {
        self.tables
            .iter()
            .find(|t| t.database == database && t.table == table)
    }

    pub fn refused(&self) -> impl Iterator<Item = &TableReport> {
        self.tables
            .iter()
            .filter(|t| matches!(t.status, TableStatus::Refused(_)))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads an extract in chunks that end on a line boundary, hashing the bytes as it goes.
struct ChunkReader {
    file: File,
    carry: Vec<u8>,
    next_line: u64,
    chunk_bytes: usize,
    digest: Sha256,
    eof: bool,
}

impl ChunkReader {
    fn open(path: &Path, chunk_bytes: usize) -> Result<(Self, Vec<u8>), IngestError> {
        let file = File::open(path).map_err(io(path))?;
        let mut r = Self {
            file,
            carry: Vec::new(),
            next_line: 1,
            chunk_bytes,
            digest: Sha256::new(),
            eof: false,
        };
        let header = r.next_line_only().map_err(io(path))?;
        Ok((r, header))
    }

    /// Reads until `want` bytes are buffered (or the end), straight into the buffer.
    fn fill(&mut self, want: usize) -> std::io::Result<()> {
        while self.carry.len() < want && !self.eof {
            let before = self.carry.len();
            let n = (&mut self.file)
                .take((want - before).max(1 << 20) as u64)
                .read_to_end(&mut self.carry)?;
            if n == 0 {
                self.eof = true;
            }
            self.digest.update(&self.carry[before..]);
        }
        Ok(())
    }

    fn next_line_only(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = self.carry.iter().position(|b| *b == b'\n') {
                let rest = self.carry.split_off(pos + 1);
                self.next_line += 1;
                return Ok(std::mem::replace(&mut self.carry, rest));
            }
            if self.eof {
                return Ok(std::mem::take(&mut self.carry));
            }
            let want = self.carry.len() + (64 << 10);
            self.fill(want)?;
        }
    }

    /// The next chunk of whole lines and the line number of its first line.
    fn next_chunk(&mut self) -> std::io::Result<Option<(Vec<u8>, u64)>> {
        let mut want = self.chunk_bytes;
        loop {
            self.fill(want)?;
            if self.carry.is_empty() {
                return Ok(None);
            }
            let cut = if self.eof {
                Some(self.carry.len())
            } else {
                self.carry.iter().rposition(|b| *b == b'\n').map(|p| p + 1)
            };
            if let Some(cut) = cut {
                let rest = self.carry.split_off(cut);
                let chunk = std::mem::replace(&mut self.carry, rest);
                let first = self.next_line;
                self.next_line += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                return Ok(Some((chunk, first)));
            }
            want = self.carry.len() * 2;
        }
    }
}

/// Feeds bytes into a BLAKE3 digest as they are written.
struct HashingWriter {
    inner: File,
    digest: blake3::Hasher,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A dictionary page big enough for a part of rows all of different persons (64 hex
/// characters and a 4-byte length each).
const IDENTIFIER_DICTIONARY_BYTES: usize = cluster::PART_ROWS * 68;

/// The columns a shadow reads for persons and facilities.
pub(crate) const SHADOW_INDEXES: [&str; 4] = [
    "person_idx",
    FACILITY_MARK_COLUMN,
    parents::PARENT_PERSON,
    parents::PARENT_FACILITY,
];

/// zstd(1); record keys are unique per row, so dictionaries and min/max statistics would cost
/// time and say nothing.
fn writer_properties(plan: &TablePlan<'_>) -> Result<WriterProperties, IngestError> {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(1 << 20));
    for name in &plan.high_cardinality {
        let path = ColumnPath::from(name.as_str());
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    // Parts are clustered by person, so a part holds each person's identifiers a few times
    // over: a dictionary of the part's persons with runs of indexes stores them in a ninth of
    // their plain size (the receipts' three, 88% of the store, went from 200 MB to 23 MB at
    // 1M receipts). The page limit
    // holds a whole part of distinct persons, so the dictionary never falls back to plain.
    // Random hex has no order, so min/max statistics would say nothing.
    for name in &plan.person_identifiers {
        let path = ColumnPath::from(name.as_str());
        b = b
            .set_column_dictionary_enabled(path.clone(), true)
            .set_column_dictionary_page_size_limit(path.clone(), IDENTIFIER_DICTIONARY_BYTES)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    // The person and facility indexes, which every checked query reads for its shadow: plain
    // and uncompressed, they are copied, where zstd and a dictionary cost a checked aggregate
    // more to decode than its own columns (four bytes a value on disk instead of two or three).
    for name in SHADOW_INDEXES {
        let path = ColumnPath::from(name);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path.clone(), Encoding::PLAIN)
            .set_column_compression(path, Compression::UNCOMPRESSED);
    }
    Ok(b.build())
}

fn write_part(
    dir: &Path,
    index: usize,
    batch: &arrow::record_batch::RecordBatch,
    props: WriterProperties,
) -> Result<Option<PartInfo>, IngestError> {
    if batch.num_rows() == 0 {
        return Ok(None);
    }
    let name = format!("part-{index:05}.parquet");
    let path = dir.join(&name);
    let file = File::create(&path).map_err(io(&path))?;
    let mut writer = ArrowWriter::try_new(
        HashingWriter {
            inner: file,
            digest: blake3::Hasher::new(),
        },
        batch.schema(),
        Some(props),
    )?;
    writer.write(batch)?;
    // Made durable all at once before the table is published ([`sync_parts`]): a part's
    // writeback then overlaps the work on the next.
    let out = writer.into_inner()?;
    Ok(Some(PartInfo {
        file: name,
        rows: batch.num_rows() as u64,
        blake3: out.digest.finalize().to_hex().to_string(),
    }))
}

/// Makes the parts in `dir` durable, as publishing a table requires.
fn sync_parts(dir: &Path, parts: &[PartInfo]) -> Result<(), IngestError> {
    parts.par_iter().try_for_each(|p| {
        let path = dir.join(&p.file);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(io(&path))
    })
}

/// Quarantined rows of one table, written beside the store: the original lines (header
/// first, bytes untouched) and the reasons by line number. Owner-only permissions.
struct Quarantine {
    dir: PathBuf,
    table: String,
    lines: Vec<u8>,
    reasons: String,
}

impl Quarantine {
    fn new(data_dir: &Path, db: &str, table: &str, header: &[u8]) -> Self {
        Self {
            dir: data_dir.join("quarantine").join(db),
            table: table.to_string(),
            lines: header.to_vec(),
            reasons: String::from("line,reason,detail\n"),
        }
    }

    fn add(&mut self, r: &Rejected) {
        self.lines.extend_from_slice(&r.raw);
        if !r.raw.ends_with(b"\n") {
            self.lines.push(b'\n');
        }
        self.reasons.push_str(&format!(
            "{},{},\"{}\"\n",
            r.line,
            r.reason.kind(),
            r.reason.detail()
        ));
    }

    fn save(self, any: bool) -> Result<(), IngestError> {
        let rejected = self.dir.join(format!("{}.rejected.csv", self.table));
        let reasons = self.dir.join(format!("{}.reasons.csv", self.table));
        if !any {
            for p in [&rejected, &reasons] {
                if p.exists() {
                    fs::remove_file(p).map_err(io(p))?;
                }
            }
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        if let Some(root) = self.dir.parent() {
            fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io(root))?;
        }
        for (path, bytes) in [
            (&rejected, self.lines.as_slice()),
            (&reasons, self.reasons.as_bytes()),
        ] {
            write_owner_only(path, bytes).map_err(io(path))?;
        }
        Ok(())
    }
}

/// Progress shown on a terminal; silent otherwise (reports are printed per table instead).
fn progress_bar(len: u64, label: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

/// A chunk's published part (none when every row was quarantined) and its rows' fate.
type ChunkOutcome = Result<(Option<PartInfo>, table::ChunkResult), IngestError>;

struct Context<'a> {
    opts: &'a IngestOptions,
    store: Store,
    key_version: String,
    hashers: Hashers,
}

/// Writes `bytes` to `path` readable by the owner only (mode 0600), atomically: a temporary
/// file beside it, synced, then renamed over it.
pub fn write_owner_only(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Runs the ingest of every table the catalog describes and the delivery holds.
/// `on_table` is called as each table finishes.
pub fn ingest(
    catalog: &Catalog,
    key: &CustodianKey,
    opts: &IngestOptions,
    on_table: &dyn Fn(&TableReport),
) -> Result<IngestReport, IngestError> {
    let started = Instant::now();
    let store = Store::new(&opts.data_dir);
    let stale = store.recover()?;
    let key_version = key.version();
    let mut registry = Registry::load(&store.registry_dir(), &key_version)?;
    let ctx = Context {
        opts,
        store,
        key_version: key_version.clone(),
        hashers: Hashers {
            id1: IdHasher::new(key, IdKind::Id1),
            id2: IdHasher::new(key, IdKind::Id2),
            id5: IdHasher::new(key, IdKind::Id5),
            research: IdHasher::new(key, IdKind::ResearchId),
            number: IdHasher::from_key_bytes(
                key.derive(niji_pseudo::Purpose::NumberIndex).as_ref(),
            ),
        },
    };
    for o in &opts.only {
        let (db, table) = o
            .split_once('.')
            .map_or((o.as_str(), None), |(d, t)| (d, Some(t)));
        let known = catalog
            .databases
            .get(db)
            .is_some_and(|d| table.is_none_or(|t| d.tables.iter().any(|x| x.name == t)));
        if !known {
            return Err(IngestError::UnknownSelection(o.clone()));
        }
    }
    let wanted = |db: &str, table: &str| {
        opts.only.is_empty()
            || opts
                .only
                .iter()
                .any(|o| o == db || *o == format!("{db}.{table}"))
    };
    let undescribed_files = undescribed(catalog, &opts.raw)?;

    // The history first: it decides ID5 for every other table.
    let mut resolver = Id5Resolver::default();
    for db in catalog.in_ingest_order() {
        for t in db.tables.iter().filter(|t| {
            t.column_with_role(niji_catalog::Role::HistoryPerson)
                .is_some()
        }) {
            let path = opts.raw.join(&db.name).join(&t.source);
            if path.exists() {
                let t0 = Instant::now();
                resolver = build_resolver(&ctx, t, &path, &mut registry)?;
                tracing::info!(
                    numbers = resolver.numbers(),
                    persons = registry.len(),
                    seconds = t0.elapsed().as_secs_f64(),
                    "insured-number history resolved"
                );
            }
        }
    }
    let t0 = Instant::now();
    registry.save()?;
    tracing::info!(
        persons = registry.len(),
        seconds = t0.elapsed().as_secs_f64(),
        "person registry saved"
    );

    let mut tables = Vec::new();
    for db in catalog.in_ingest_order() {
        // A parent's index (millions of record keys) is built once for all its details.
        let mut indexes: std::collections::BTreeMap<&str, Option<parents::ParentIndex>> =
            std::collections::BTreeMap::new();
        for t in db.tables.iter().filter(|t| wanted(&db.name, &t.name)) {
            let link = Linkage {
                hashers: &ctx.hashers,
                resolver: &resolver,
                registry: &registry,
            };
            let parent = match t
                .parent
                .as_ref()
                .and_then(|l| Some((l, db.tables.iter().find(|p| p.name == l.table)?)))
            {
                Some((link, parent)) => {
                    if !indexes.contains_key(parent.name.as_str()) {
                        let index = parents::ParentIndex::load(&ctx.store, &db.name, parent)?;
                        indexes.insert(&parent.name, index);
                    }
                    indexes
                        .get(parent.name.as_str())
                        .and_then(Option::as_ref)
                        .map(|index| (index, link.key.as_str()))
                }
                None => None,
            };
            let report = ingest_table(&ctx, &db.name, t, parent, link)?;
            // Published anew: an index of its earlier version would be stale.
            indexes.remove(t.name.as_str());
            on_table(&report);
            tables.push(report);
        }
    }
    let report = IngestReport {
        key_version,
        tables,
        undescribed_files,
        persons_in_registry: registry.len() as u64,
        persons_added: registry.added,
        insured_numbers_in_history: resolver.numbers() as u64,
        stale_staging_removed: stale,
        seconds: started.elapsed().as_secs_f64(),
    };
    let reports = opts.data_dir.join("reports");
    fs::create_dir_all(&reports).map_err(io(&reports))?;
    let path = reports.join("ingest.json");
    let tmp = path.with_extension("tmp");
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(&report).map_err(|e| IngestError::Internal(e.to_string()))?,
    )
    .map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(report)
}

/// Files under the delivery that no catalog table describes.
fn undescribed(catalog: &Catalog, raw: &Path) -> Result<Vec<String>, IngestError> {
    let mut out = Vec::new();
    let Ok(dbs) = fs::read_dir(raw) else {
        return Err(IngestError::Io {
            path: raw.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    };
    for db in dbs.flatten() {
        let db_name = db.file_name().to_string_lossy().to_string();
        let files: Vec<PathBuf> = if db.path().is_dir() {
            fs::read_dir(db.path())
                .map_err(io(&db.path()))?
                .flatten()
                .map(|e| e.path())
                .collect()
        } else {
            vec![db.path()]
        };
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let described = catalog
                .databases
                .get(&db_name)
                .is_some_and(|d| d.tables.iter().any(|t| t.source == name));
            if !described {
                out.push(f.strip_prefix(raw).unwrap_or(&f).display().to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn build_resolver(
    ctx: &Context<'_>,
    table: &Table,
    path: &Path,
    registry: &mut Registry,
) -> Result<Id5Resolver, IngestError> {
    let (mut reader, header) = ChunkReader::open(path, ctx.opts.chunk_bytes)?;
    let plan = TablePlan::new(table, &table::parse_header(&header, table.encoding)?)?;
    let mut chunks = Vec::new();
    while let Some((chunk, _)) = reader.next_chunk().map_err(io(path))? {
        chunks.push(chunk);
    }
    let parts = chunks
        .par_iter()
        .map(|chunk| {
            let mut entries = Vec::new();
            table::collect_history(&plan, chunk, &mut entries).map(|()| entries)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Id5Resolver::build(
        &parts.into_iter().flatten().collect::<Vec<_>>(),
        &ctx.hashers.id5,
        &ctx.hashers.number,
        registry,
    ))
}

fn ingest_table(
    ctx: &Context<'_>,
    db: &str,
    table: &Table,
    parent: Option<(&parents::ParentIndex, &str)>,
    link: Linkage<'_>,
) -> Result<TableReport, IngestError> {
    let started = Instant::now();
    let _span = tracing::info_span!("ingest_table", db, table = %table.name).entered();
    let path = ctx.opts.raw.join(db).join(&table.source);
    let mut report = TableReport {
        database: db.to_string(),
        table: table.name.clone(),
        status: TableStatus::Ingested,
        counts: Counts::default(),
        parts: 0,
        bytes: 0,
        seconds: 0.0,
        content_digest: None,
        spilled_chunks: 0,
    };
    if !path.exists() {
        report.status = TableStatus::Absent;
        return Ok(report);
    }
    report.bytes = fs::metadata(&path).map_err(io(&path))?.len();
    let (mut reader, header) = ChunkReader::open(&path, ctx.opts.chunk_bytes)?;
    let plan = match table::parse_header(&header, table.encoding)
        .and_then(|h| TablePlan::new(table, &h))
    {
        Ok(plan) => plan,
        Err(e @ (IngestError::HeaderMismatch { .. } | IngestError::BadHeader(_))) => {
            report.status = TableStatus::Refused(e.to_string());
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    let marked = facility::marked_column(table);
    let own = match marked {
        Some(_) => facility::schema(&plan.schema),
        None => plan.schema.clone(),
    };
    let schema = parent.map_or_else(|| own.clone(), |(p, _)| p.schema(&own));
    let staging = ctx.store.staging(db, &table.name)?;
    let fields: Vec<FieldInfo> = schema
        .fields()
        .iter()
        .map(|f| FieldInfo {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect();
    // Person-level rows (and details, by their record's person) are clustered by fiscal year
    // and person as they are read.
    let coded;
    let clusterer = match ["person_idx", parents::PARENT_PERSON]
        .into_iter()
        .find(|c| schema.column_with_name(c).is_some())
    {
        Some(person) => {
            let period = match parent {
                Some(_) => Some(parents::PARENT_PERIOD),
                None => table.period_column.as_deref(),
            }
            .filter(|p| schema.column_with_name(p).is_some());
            // The facility a project's shadow view counts: details count their record's.
            let facility = if table.is_person_level() {
                FACILITY_MARK_COLUMN
            } else {
                parents::PARENT_FACILITY
            };
            let facility = schema.column_with_name(facility).map(|_| facility);
            coded = strata::coded_columns(table, &schema);
            let keys = cluster::Keys {
                person,
                period,
                facility,
                coded: &coded,
                persons: link.registry.len(),
            };
            Some(cluster::Clusterer::new(
                keys,
                schema.clone(),
                &staging,
                ctx.opts.memory_budget,
                ctx.opts.sort_rows,
            )?)
        }
        None => None,
    };
    let props = writer_properties(&plan)?;
    let bar = progress_bar(report.bytes, &format!("{db}.{}", table.name));
    let mut quarantine = Quarantine::new(&ctx.opts.data_dir, db, &table.name, &header);
    let in_flight = rayon::current_num_threads().max(1) * 2;
    // A reader thread feeds chunks while the pool turns them into parts (or gives them to the
    // clusterer); results come back in any order and are put back in file order by chunk index.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>, u64)>(in_flight);
    let (read, mut results) = std::thread::scope(|scope| {
        let feeder = scope.spawn(move || -> Result<ChunkReader, IngestError> {
            let mut index = 0;
            while let Some((chunk, first_line)) = reader.next_chunk().map_err(io(&path))? {
                if tx.send((index, chunk, first_line)).is_err() {
                    break;
                }
                index += 1;
            }
            Ok(reader)
        });
        let results: Vec<(usize, ChunkOutcome)> = rx
            .into_iter()
            .par_bridge()
            .map(|(i, chunk, first_line)| {
                let result =
                    table::process_chunk(&plan, link, &chunk, first_line).and_then(|mut r| {
                        if let Some(column) = marked {
                            r.batch = facility::attach(&r.batch, column)?;
                        }
                        if let Some((p, key)) = parent {
                            r.batch = p.attach(&r.batch, key)?;
                        }
                        let part = match &clusterer {
                            Some(c) => c.add(i, &r.batch).map(|()| None)?,
                            None => write_part(&staging, i, &r.batch, props.clone())?,
                        };
                        r.batch = arrow::record_batch::RecordBatch::new_empty(plan.schema.clone());
                        Ok((part, r))
                    });
                bar.inc(chunk.len() as u64);
                (i, result)
            })
            .collect();
        (feeder.join(), results)
    });
    let reader =
        read.map_err(|_| IngestError::Internal("the extract reader panicked".into()))??;
    results.sort_by_key(|(i, _)| *i);
    let mut parts = Vec::new();
    for (_, result) in results {
        let (part, r) = result?;
        parts.extend(part);
        for rej in &r.rejected {
            quarantine.add(rej);
        }
        report.counts.add(&r.counts);
    }
    bar.finish_and_clear();
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "extract read");
    let mut ceilings = BTreeMap::new();
    let mut strata = None;
    if let Some(clusterer) = clusterer {
        let clustered = clusterer.finish(&staging, &props)?;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            spilled_chunks = clustered.spilled_chunks,
            "clustered"
        );
        parts = clustered.parts;
        ceilings = clustered.ceilings;
        report.spilled_chunks = clustered.spilled_chunks;
        if let Some(s) = clustered.strata {
            strata = Some(niji_store::write_strata(&staging, &s)?);
        }
    }
    sync_parts(&staging, &parts)?;
    let source_sha256 = hex(&reader.digest.finalize());
    let manifest = Manifest {
        database: db.to_string(),
        table: table.name.clone(),
        rows: report.counts.rows_stored,
        quarantined: report.counts.quarantined_total(),
        schema: fields,
        content_digest: Manifest::content_digest_of(&parts),
        parts,
        source_sha256,
        key_version: ctx.key_version.clone(),
        niji_version: env!("CARGO_PKG_VERSION").to_string(),
        parent_digest: parent.map(|(p, _)| p.digest.clone()),
        ceilings,
        strata,
    };
    quarantine.save(manifest.quarantined > 0)?;
    report.parts = manifest.parts.len();
    report.content_digest = Some(manifest.content_digest.clone());
    ctx.store.publish(&staging, &manifest)?;
    report.seconds = started.elapsed().as_secs_f64();
    tracing::info!(db, table = %table.name, rows = report.counts.rows_stored, quarantined = manifest.quarantined, seconds = report.seconds, "table published");
    Ok(report)
}
