//! ID5 and the person registry.
//!
//! ID5 is the keyed hash of a person's OLDEST individual insured number (保険者番号, 記号, 番号,
//! 枝番), found through the history of insured numbers: every number a person held maps to
//! that one ID5, so records stay linked across insurer changes, marriage and the move to
//! 後期高齢者医療 at 75. The registry gives each ID5 a compact index once, for good.

use ahash::AHashMap as HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, FixedSizeBinaryArray, FixedSizeBinaryBuilder, UInt32Array, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use niji_pseudo::{CivilDate, IdHasher};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::IngestError;

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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Registry {
    /// Loads the registry in `dir`, refusing one made under another key (its ID5s would not
    /// match the ones this key makes).
    pub fn load(dir: &Path, key_version: &str) -> Result<Self, IngestError> {
        let mut reg = Self {
            dir: dir.to_path_buf(),
            key_version: key_version.to_string(),
            ..Self::default()
        };
        let meta_path = dir.join("registry.json");
        let meta: RegistryMeta = match fs::read(&meta_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| IngestError::Corrupt(format!("{}: {e}", meta_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(reg),
            Err(e) => return Err(io(&meta_path)(e)),
        };
        if meta.key_version != key_version {
            return Err(IngestError::KeyMismatch {
                store: meta.key_version,
                key: key_version.to_string(),
            });
        }
        for (id, idx) in read_pairs(&dir.join("persons.parquet"))? {
            if idx as usize != reg.ids.len() {
                return Err(IngestError::Corrupt(
                    "registry indices are not dense".into(),
                ));
            }
            reg.index.insert(id, idx);
            reg.ids.push(id);
        }
        let numbers = dir.join("numbers.parquet");
        if numbers.exists() {
            reg.numbers = read_pairs(&numbers)?.into_iter().collect();
        }
        if reg.numbers.len() as u64 != meta.numbers {
            return Err(IngestError::Corrupt(
                "registry number count does not match its metadata".into(),
            ));
        }
        if reg.ids.len() as u64 != meta.persons {
            return Err(IngestError::Corrupt(
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
    pub fn save(&self) -> Result<(), IngestError> {
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
            crate::store::STAGING_PREFIX,
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
            serde_json::to_vec_pretty(&meta).map_err(|e| IngestError::Internal(e.to_string()))?,
        )
        .map_err(io(&meta_path))?;
        File::open(&meta_path)
            .and_then(|f| f.sync_all())
            .map_err(io(&meta_path))?;
        crate::store::swap_in(&staging, &self.dir)
    }
}

fn write_pairs<'a>(
    path: &Path,
    name: &str,
    pairs: impl Iterator<Item = (&'a [u8; 32], u32)>,
) -> Result<(), IngestError> {
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

fn read_pairs(path: &Path) -> Result<Vec<([u8; 32], u32)>, IngestError> {
    let file = File::open(path).map_err(io(path))?;
    let mut out = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
        let batch = batch?;
        let keys = column::<FixedSizeBinaryArray>(&batch, 0)?;
        let idx = column::<UInt32Array>(&batch, 1)?;
        for i in 0..batch.num_rows() {
            let k: [u8; 32] = keys.value(i).try_into().map_err(|_| {
                IngestError::Corrupt(format!("{} holds a malformed value", path.display()))
            })?;
            out.push((k, idx.value(i)));
        }
    }
    Ok(out)
}

fn column<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T, IngestError> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| IngestError::Corrupt("unexpected column type".into()))
}

/// The normalised 個人単位被保険者番号 as lookup key: fields joined by 0x1F.
pub fn individual_key(insurer: &str, symbol: &str, number: &str, branch: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(insurer.len() + symbol.len() + number.len() + branch.len() + 3);
    individual_key_into(&mut k, insurer, symbol, number, branch);
    k
}

/// [`individual_key`] into a reused buffer (once per row on the hot path).
pub fn individual_key_into(
    k: &mut Vec<u8>,
    insurer: &str,
    symbol: &str,
    number: &str,
    branch: &str,
) {
    k.clear();
    for (i, part) in [insurer, symbol, number, branch].iter().enumerate() {
        if i > 0 {
            k.push(0x1f);
        }
        k.extend_from_slice(part.as_bytes());
    }
}

/// One valid row of the history table, as needed to find each person's oldest number.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub person_ref: String,
    pub number_key: Vec<u8>,
    pub valid_from: CivilDate,
}

/// Every individual insured number → the person's index in the registry. Looked up once per
/// row, so numbers are kept as 128-bit XXH3 fingerprints inline in the table (one hash, no
/// pointer to chase); a chance collision among n numbers has probability about n²/2¹²⁹.
#[derive(Debug, Default)]
pub struct Id5Resolver {
    by_number: HashMap<u128, u32>,
}

fn fingerprint(number_key: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(number_key)
}

impl Id5Resolver {
    pub fn build(
        entries: &[HistoryEntry],
        hasher: &IdHasher,
        number_hasher: &IdHasher,
        registry: &mut Registry,
    ) -> Self {
        // Sort (in parallel) by person, then start date, then number: each person's first entry
        // is the oldest number. Sorting beats a hash map of person references at this size.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.par_sort_unstable_by(|&a, &b| {
            let (x, y) = (&entries[a], &entries[b]);
            (x.person_ref.as_str(), x.valid_from, x.number_key.as_slice()).cmp(&(
                y.person_ref.as_str(),
                y.valid_from,
                y.number_key.as_slice(),
            ))
        });
        let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
        for k in 0..order.len() {
            if k == 0 || entries[order[k]].person_ref != entries[order[k - 1]].person_ref {
                groups.push(k..k);
            }
            if let Some(g) = groups.last_mut() {
                g.end = k + 1;
            }
        }
        // The lookup key is the fields joined by 0x1F, which is exactly the identifier input.
        let id5s: Vec<[u8; 32]> = groups
            .par_iter()
            .map(|g| hasher.hash(&[&entries[order[g.start]].number_key]))
            .collect();
        registry.extend(id5s.iter().copied());
        let reg: &Registry = registry;
        let order = &order;
        let numbers: Vec<(u128, [u8; 32], u32)> = groups
            .par_iter()
            .zip(&id5s)
            .filter_map(|(g, id5)| reg.get(id5).map(|idx| (g.clone(), idx)))
            .flat_map_iter(|(g, idx)| {
                g.map(move |k| {
                    let number = &entries[order[k]].number_key;
                    (fingerprint(number), number_hasher.hash(&[number]), idx)
                })
            })
            .collect();
        let mut by_number = HashMap::with_capacity(numbers.len());
        for (fp, number_hash, idx) in numbers {
            by_number.insert(fp, idx);
            registry.remember_number(number_hash, idx);
        }
        Self { by_number }
    }

    pub fn resolve(&self, number_key: &[u8]) -> Option<u32> {
        self.by_number.get(&fingerprint(number_key)).copied()
    }

    pub fn numbers(&self) -> usize {
        self.by_number.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(person: &str, number: &str, from: (i32, u32, u32)) -> HistoryEntry {
        HistoryEntry {
            person_ref: person.into(),
            number_key: individual_key("01130012", "", number, "00"),
            valid_from: CivilDate::new(from.0, from.1, from.2).unwrap(),
        }
    }

    #[test]
    fn every_number_of_a_person_resolves_to_the_id5_of_the_oldest() {
        let hasher = IdHasher::from_key_bytes(&[9; 32]);
        let mut reg = Registry::default();
        let entries = vec![
            entry("A", "200", (2020, 1, 1)),
            entry("A", "100", (2010, 1, 1)),
            entry("B", "300", (2015, 1, 1)),
        ];
        let r = Id5Resolver::build(&entries, &hasher, &hasher, &mut reg);
        let a_new = r
            .resolve(&individual_key("01130012", "", "200", "00"))
            .unwrap();
        let a_old = r
            .resolve(&individual_key("01130012", "", "100", "00"))
            .unwrap();
        let b = r
            .resolve(&individual_key("01130012", "", "300", "00"))
            .unwrap();
        assert_eq!(a_new, a_old);
        assert_ne!(a_new, b);
        let expected = hasher.hash(&[b"01130012", b"", b"100", b"00"]);
        assert_eq!(reg.id5(a_new), &expected);
        assert!(
            r.resolve(&individual_key("01130012", "", "999", "00"))
                .is_none()
        );
    }

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
            Err(IngestError::KeyMismatch { .. })
        ));
    }
}
