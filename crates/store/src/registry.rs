//! The person registry: ID5 → person index, assigned once and never reused, with the keyed
//! hashes of the insured numbers seen in histories. Written atomically beside the tables.

use ahash::AHashMap as HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{FixedSizeBinaryArray, FixedSizeBinaryBuilder, UInt32Array, UInt32Builder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::{StoreError, io};

/// The custodian's master person index: ID5 → person index, assigned once and never reused.
#[derive(Debug, Default)]
pub struct Registry {
    ids: Vec<[u8; 32]>,
    index: HashMap<[u8; 32], u32>,
    /// Keyed hashes of every individual insured number seen in a history → person index, so a
    /// later delivery without the history still finds ID5 (never the numbers themselves).
    numbers: HashMap<[u8; 32], u32>,
    /// Whether anything was added since loading (nothing to write otherwise).
    changed: bool,
    dir: PathBuf,
    key_version: String,
    pub added: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct RegistryMeta {
    key_version: String,
    persons: u64,
    #[serde(default)]
    numbers: u64,
}

impl Registry {
    /// Loads the registry in `dir`, refusing one made under another key (its ID5s would not
    /// match the ones this key makes).
    pub fn load(dir: &Path, key_version: &str) -> Result<Self, StoreError> {
        let mut reg = Self {
            dir: dir.to_path_buf(),
            key_version: key_version.to_string(),
            ..Self::default()
        };
        let meta_path = dir.join("registry.json");
        let meta: RegistryMeta = match fs::read(&meta_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", meta_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(reg),
            Err(e) => return Err(io(&meta_path)(e)),
        };
        if meta.key_version != key_version {
            return Err(StoreError::KeyMismatch {
                store: meta.key_version,
                key: key_version.to_string(),
            });
        }
        for (id, idx) in read_pairs(&dir.join("persons.parquet"))? {
            if idx as usize != reg.ids.len() {
                return Err(StoreError::Corrupt("registry indices are not dense".into()));
            }
            reg.index.insert(id, idx);
            reg.ids.push(id);
        }
        let numbers = dir.join("numbers.parquet");
        if numbers.exists() {
            reg.numbers = read_pairs(&numbers)?.into_iter().collect();
        }
        if reg.numbers.len() as u64 != meta.numbers {
            return Err(StoreError::Corrupt(
                "registry number count does not match its metadata".into(),
            ));
        }
        if reg.ids.len() as u64 != meta.persons {
            return Err(StoreError::Corrupt(
                "registry row count does not match its metadata".into(),
            ));
        }
        Ok(reg)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn get(&self, id5: &[u8; 32]) -> Option<u32> {
        self.index.get(id5).copied()
    }

    pub fn id5(&self, idx: u32) -> &[u8; 32] {
        &self.ids[idx as usize]
    }

    /// Remembers the keyed hash of an insured number for its person.
    pub fn remember_number(&mut self, number_hash: [u8; 32], idx: u32) {
        self.changed |= self.numbers.insert(number_hash, idx) != Some(idx);
    }

    /// The person whose insured number has this keyed hash, as seen in an earlier history.
    pub fn person_of_number(&self, number_hash: &[u8; 32]) -> Option<u32> {
        self.numbers.get(number_hash).copied()
    }

    /// Every registered ID5, by person index.
    pub fn ids(&self) -> &[[u8; 32]] {
        &self.ids
    }

    /// Adds the new ID5s in byte order (so the assignment depends on nothing but the set).
    pub fn extend(&mut self, candidates: impl IntoIterator<Item = [u8; 32]>) {
        let mut fresh: Vec<[u8; 32]> = candidates
            .into_iter()
            .filter(|id| !self.index.contains_key(id))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        for id in fresh {
            let idx = self.ids.len() as u32;
            self.index.insert(id, idx);
            self.ids.push(id);
            self.added += 1;
            self.changed = true;
        }
    }

    /// Writes the registry atomically, unless nothing was added since it was loaded.
    pub fn save(&self) -> Result<(), StoreError> {
        if !self.changed && self.dir.join("registry.json").exists() {
            return Ok(());
        }
        // All three files are written to a staging directory and swapped in at once, so a
        // crash leaves the old registry or the new one, never a mix.
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let staging = self.dir.with_file_name(format!(
            "{}{name}-{}",
            crate::STAGING_PREFIX,
            std::process::id()
        ));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        fs::create_dir_all(&staging).map_err(io(&staging))?;
        write_pairs(
            &staging.join("persons.parquet"),
            "id5",
            self.ids.iter().enumerate().map(|(i, id)| (id, i as u32)),
        )?;
        let mut numbers: Vec<(&[u8; 32], u32)> =
            self.numbers.iter().map(|(k, v)| (k, *v)).collect();
        numbers.sort_unstable();
        write_pairs(
            &staging.join("numbers.parquet"),
            "number_hash",
            numbers.into_iter(),
        )?;
        let meta = RegistryMeta {
            key_version: self.key_version.clone(),
            persons: self.ids.len() as u64,
            numbers: self.numbers.len() as u64,
        };
        let meta_path = staging.join("registry.json");
        fs::write(
            &meta_path,
            serde_json::to_vec_pretty(&meta).map_err(|e| StoreError::Internal(e.to_string()))?,
        )
        .map_err(io(&meta_path))?;
        File::open(&meta_path)
            .and_then(|f| f.sync_all())
            .map_err(io(&meta_path))?;
        crate::swap_in(&staging, &self.dir)
    }
}

fn write_pairs<'a>(
    path: &Path,
    name: &str,
    pairs: impl Iterator<Item = (&'a [u8; 32], u32)>,
) -> Result<(), StoreError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(name, DataType::FixedSizeBinary(32), false),
        Field::new("person_idx", DataType::UInt32, false),
    ]));
    let file = File::create(path).map_err(io(path))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None)?;
    let mut pairs = pairs.peekable();
    while pairs.peek().is_some() {
        let mut keys = FixedSizeBinaryBuilder::new(32);
        let mut idx = UInt32Builder::new();
        for (k, i) in pairs.by_ref().take(1 << 20) {
            keys.append_value(k)?;
            idx.append_value(i);
        }
        writer.write(&RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(keys.finish()), Arc::new(idx.finish())],
        )?)?;
    }
    writer.into_inner()?.sync_all().map_err(io(path))
}

fn read_pairs(path: &Path) -> Result<Vec<([u8; 32], u32)>, StoreError> {
    let file = File::open(path).map_err(io(path))?;
    let mut out = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
        let batch = batch?;
        let keys = column::<FixedSizeBinaryArray>(&batch, 0)?;
        let idx = column::<UInt32Array>(&batch, 1)?;
        for i in 0..batch.num_rows() {
            let k: [u8; 32] = keys.value(i).try_into().map_err(|_| {
                StoreError::Corrupt(format!("{} holds a malformed value", path.display()))
            })?;
            out.push((k, idx.value(i)));
        }
    }
    Ok(out)
}

fn column<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T, StoreError> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| StoreError::Corrupt("unexpected column type".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_indices_are_stable_across_saves_and_new_persons() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::load(dir.path(), "v1:test").unwrap();
        reg.extend([[3; 32], [1; 32]]);
        reg.save().unwrap();
        let mut again = Registry::load(dir.path(), "v1:test").unwrap();
        assert_eq!(again.get(&[1; 32]), Some(0));
        assert_eq!(again.get(&[3; 32]), Some(1));
        again.extend([[2; 32], [3; 32]]);
        assert_eq!(again.get(&[2; 32]), Some(2));
        assert_eq!(again.added, 1);
        assert!(matches!(
            Registry::load(dir.path(), "v1:other"),
            Err(StoreError::KeyMismatch { .. })
        ));
    }
}
