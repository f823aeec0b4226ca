use std::path::{Path, PathBuf};

use niji_catalog::Catalog;
use niji_ingest::{IngestOptions, IngestReport, ingest};
use niji_pseudo::CustodianKey;
use niji_synth::{SynthConfig, SynthReport};

pub fn catalog() -> Catalog {
    Catalog::load(
        &Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
            .join("../../catalog"),
    )
    .unwrap()
}

/// A synthetic delivery in a temporary directory, with its key and data directory.
pub struct Delivery {
    pub dir: tempfile::TempDir,
    pub synth: SynthReport,
    pub key: CustodianKey,
}

impl Delivery {
    pub fn new(persons: u64, seed: u64) -> Self {
        Self::with(persons, seed, |_| {})
    }

    pub fn with(persons: u64, seed: u64, tweak: impl FnOnce(&mut SynthConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SynthConfig::new(persons, seed, dir.path().join("delivery"));
        cfg.months = 12;
        cfg.defect_rate = 0.004;
        tweak(&mut cfg);
        let synth = niji_synth::generate(&cfg, &|_, _| {}).unwrap();
        Self {
            dir,
            synth,
            key: CustodianKey::from_bytes([0x5a; 32]),
        }
    }

    pub fn raw(&self) -> PathBuf {
        self.dir.path().join("delivery/raw")
    }

    pub fn truth(&self) -> PathBuf {
        self.dir.path().join("delivery/truth/truth.csv")
    }

    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ingest_into(&self, data_dir: &str) -> IngestReport {
        self.try_ingest(data_dir, &self.key).unwrap()
    }

    pub fn try_ingest(
        &self,
        data_dir: &str,
        key: &CustodianKey,
    ) -> Result<IngestReport, niji_ingest::IngestError> {
        self.ingest_with(data_dir, key, |_| {})
    }

    /// Ingests into `data_dir` with the fixture's options changed by `tweak`.
    pub fn ingest_with(
        &self,
        data_dir: &str,
        key: &CustodianKey,
        tweak: impl FnOnce(&mut IngestOptions),
    ) -> Result<IngestReport, niji_ingest::IngestError> {
        let mut opts = IngestOptions::new(self.raw(), self.data_dir(data_dir));
        // Small chunks, so tables span several parts and the parallel path is exercised.
        opts.chunk_bytes = 256 << 10;
        tweak(&mut opts);
        ingest(&catalog(), key, &opts, &|_| {})
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}
