//! Synthetic stores: persons generated from the catalog's synthetic model, ingested like a
//! delivery. The dummy store of the Visiting environment, the test environments and the
//! benchmarks are all made this way.

use std::path::Path;

use niji_catalog::Catalog;
use niji_pseudo::CustodianKey;
use niji_synth::SynthConfig;

use crate::{IngestError, IngestOptions, IngestReport, ingest};

/// How many persons the dummy store has, and the seed they are generated from.
const DUMMY_PERSONS: u64 = 2_000;
const DUMMY_SEED: u64 = 0x6e69_6a69_6475_6d6d;

/// Generates `cfg.persons` synthetic persons into `cfg.out`, ingests them (all tables, or
/// `only`) under `key` into `data_dir`, and removes the generated extracts and truth. Blocking.
pub fn synthetic_store(
    catalog: &Catalog,
    key: &CustodianKey,
    cfg: &SynthConfig,
    data_dir: &Path,
    only: Vec<String>,
) -> Result<IngestReport, IngestError> {
    niji_synth::generate(cfg, &|_, _| {}).map_err(|e| IngestError::Synthetic(e.to_string()))?;
    let mut opts = IngestOptions::new(cfg.out.join("raw"), data_dir.to_path_buf());
    opts.only = only;
    let report = ingest(catalog, key, &opts, &|_| {})?;
    std::fs::remove_dir_all(&cfg.out).map_err(|source| IngestError::Io {
        path: cfg.out.clone(),
        source,
    })?;
    Ok(report)
}

/// The dummy store in `dir`: a small synthetic store without defects, under `key` (the dummy
/// store's own key, so nothing keyed in it matches the real store).
pub fn dummy_store(catalog: &Catalog, key: &CustodianKey, dir: &Path) -> Result<(), IngestError> {
    let mut cfg = SynthConfig::new(DUMMY_PERSONS, DUMMY_SEED, dir.join("synth"));
    cfg.defect_rate = 0.0;
    synthetic_store(catalog, key, &cfg, dir, Vec::new()).map(drop)
}
