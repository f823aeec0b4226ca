//! The Parquet store: `store/<db>/<table>/part-*.parquet` plus `manifest.json`.
//!
//! Publishing is atomic: a table is built in a staging directory beside its final place and
//! swapped in with one `renameat2(RENAME_EXCHANGE)`, so readers see the old version or the new
//! one, never a mix; a crash leaves at most a staging directory, which the next run removes.
//! A directory without a manifest is never a table.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Ceiling, Strata};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::{StoreError, io};

pub const MANIFEST: &str = "manifest.json";
pub const STAGING_PREFIX: &str = ".staging-";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartInfo {
    pub file: String,
    pub rows: u64,
    /// BLAKE3 of the file: integrity of what niji wrote, at a fraction of SHA-256's cost.
    pub blake3: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FieldInfo {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

/// What a published table holds. Deterministic: the same input and key give the same manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub database: String,
    pub table: String,
    pub rows: u64,
    pub quarantined: u64,
    pub schema: Vec<FieldInfo>,
    pub parts: Vec<PartInfo>,
    /// BLAKE3 over the parts' names and digests, in order.
    pub content_digest: String,
    /// SHA-256 of the extract as delivered, comparable with the provider's `sha256sum`.
    pub source_sha256: String,
    /// Fingerprint of the custodian key that made the identifiers (never the key).
    pub key_version: String,
    pub niji_version: String,
    /// For details carrying their parent's person and facility: the parent's content digest
    /// they were matched against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_digest: Option<String>,
    /// Per numeric column, the largest per-person totals (tables clustered by person only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ceilings: BTreeMap<String, Ceiling>,
    /// The table's strata (tables clustered by person, with coded columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strata: Option<StrataFile>,
}

/// Where a table's [`Strata`] are, and what they are of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StrataFile {
    pub file: String,
    pub blake3: String,
    pub columns: Vec<String>,
    pub count: usize,
}

const STRATA_FILE: &str = "strata.bin";

/// Writes `strata` into a table's staging directory.
pub fn write_strata(staging: &Path, strata: &Strata) -> Result<StrataFile, StoreError> {
    let bytes = strata
        .encode()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    let path = staging.join(STRATA_FILE);
    let mut f = File::create(&path).map_err(io(&path))?;
    f.write_all(&bytes).map_err(io(&path))?;
    f.sync_all().map_err(io(&path))?;
    Ok(StrataFile {
        file: STRATA_FILE.to_string(),
        blake3: blake3::hash(&bytes).to_hex().to_string(),
        columns: strata.columns(),
        count: strata.len(),
    })
}

impl Manifest {
    pub fn content_digest_of(parts: &[PartInfo]) -> String {
        let mut h = blake3::Hasher::new();
        for p in parts {
            h.update(p.file.as_bytes());
            h.update(&[0]);
            h.update(p.blake3.as_bytes());
            h.update(&[0]);
        }
        h.finalize().to_hex().to_string()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Layout of the data directory.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("store"),
        }
    }

    pub fn table_dir(&self, db: &str, table: &str) -> PathBuf {
        self.root.join(db).join(table)
    }

    pub fn registry_dir(&self) -> PathBuf {
        self.root.join("_registry")
    }

    /// Removes staging directories left by an interrupted run. Published tables are untouched.
    pub fn recover(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        let Ok(dbs) = fs::read_dir(&self.root) else {
            return Ok(0);
        };
        for db in dbs.flatten() {
            // The registry is staged beside the databases, one level up.
            if db.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
                fs::remove_dir_all(db.path()).map_err(io(&db.path()))?;
                removed += 1;
                continue;
            }
            let Ok(entries) = fs::read_dir(db.path()) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
                    fs::remove_dir_all(e.path()).map_err(io(&e.path()))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// A fresh staging directory for `db.table`.
    pub fn staging(&self, db: &str, table: &str) -> Result<PathBuf, StoreError> {
        let dir = self
            .root
            .join(db)
            .join(format!("{STAGING_PREFIX}{table}-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// Writes the manifest into `staging` and swaps it into place atomically.
    pub fn publish(&self, staging: &Path, manifest: &Manifest) -> Result<(), StoreError> {
        let json =
            serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::Internal(e.to_string()))?;
        let path = staging.join(MANIFEST);
        let mut f = File::create(&path).map_err(io(&path))?;
        f.write_all(&json).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        File::open(staging)
            .and_then(|d| d.sync_all())
            .map_err(io(staging))?;
        let target = self.table_dir(&manifest.database, &manifest.table);
        swap_in(staging, &target)
    }

    pub fn manifest(&self, db: &str, table: &str) -> Result<Option<Manifest>, StoreError> {
        let path = self.table_dir(db, table).join(MANIFEST);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Reads the named columns of a published table.
    pub fn read_columns(
        &self,
        db: &str,
        table: &str,
        columns: &[&str],
    ) -> Result<Vec<RecordBatch>, StoreError> {
        let manifest = self
            .manifest(db, table)?
            .ok_or_else(|| StoreError::NotIngested(format!("{db}.{table}")))?;
        let dir = self.table_dir(db, table);
        let mut out = Vec::new();
        for part in &manifest.parts {
            let path = dir.join(&part.file);
            let file = File::open(&path).map_err(io(&path))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
            let schema: SchemaRef = builder.schema().clone();
            let mut indices = Vec::new();
            for c in columns {
                indices.push(
                    schema.index_of(c).map_err(|_| {
                        StoreError::Corrupt(format!("{db}.{table} has no column {c}"))
                    })?,
                );
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
            for batch in builder
                .with_projection(mask)
                .with_batch_size(65_536)
                .build()?
            {
                out.push(batch?);
            }
        }
        Ok(out)
    }

    /// The strata of a published table, checked against its manifest; None where it has none.
    pub fn strata(&self, db: &str, table: &str) -> Result<Option<Strata>, StoreError> {
        let Some(manifest) = self.manifest(db, table)? else {
            return Ok(None);
        };
        let Some(file) = &manifest.strata else {
            return Ok(None);
        };
        let path = self.table_dir(db, table).join(&file.file);
        let bytes = fs::read(&path).map_err(io(&path))?;
        if blake3::hash(&bytes).to_hex().as_str() != file.blake3 {
            return Err(StoreError::Corrupt(format!(
                "{} does not match its manifest digest",
                path.display()
            )));
        }
        let strata = Strata::decode(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        if strata.len() != file.count || strata.columns() != file.columns {
            return Err(StoreError::Corrupt(format!(
                "{} is not the strata its manifest describes",
                path.display()
            )));
        }
        Ok(Some(strata))
    }

    /// Checks every part (and the strata) against its manifest digest.
    pub fn verify(&self, db: &str, table: &str) -> Result<Manifest, StoreError> {
        let manifest = self
            .manifest(db, table)?
            .ok_or_else(|| StoreError::NotIngested(format!("{db}.{table}")))?;
        let dir = self.table_dir(db, table);
        for part in &manifest.parts {
            let path = dir.join(&part.file);
            let bytes = fs::read(&path).map_err(io(&path))?;
            if blake3::hash(&bytes).to_hex().as_str() != part.blake3 {
                return Err(StoreError::Corrupt(format!(
                    "{} does not match its manifest digest",
                    path.display()
                )));
            }
        }
        self.strata(db, table)?;
        if Manifest::content_digest_of(&manifest.parts) != manifest.content_digest {
            return Err(StoreError::Corrupt(format!(
                "{db}.{table}: content digest mismatch"
            )));
        }
        Ok(manifest)
    }
}

/// Moves `staging` to `target`: an atomic exchange when `target` exists (the old version then
/// sits in `staging` and is removed), a plain rename otherwise.
pub fn swap_in(staging: &Path, target: &Path) -> Result<(), StoreError> {
    if target.exists() {
        let parent = target.parent().unwrap_or(Path::new("."));
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            staging,
            rustix::fs::CWD,
            target,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| StoreError::Io {
            path: target.to_path_buf(),
            source: e.into(),
        })?;
        fs::remove_dir_all(staging).map_err(io(staging))?;
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(parent))?;
    } else {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        fs::rename(staging, target).map_err(io(target))?;
    }
    Ok(())
}
