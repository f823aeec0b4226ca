//! The store's on-disk format, read and written here only: the layout of the data directory
//! (`store/<db>/<table>/part-*.parquet` and `manifest.json`, published atomically), the person
//! registry, the columns details carry from their parents, each table's strata, the ceilings of
//! its numeric columns and the marks of its facilities.
//!
//! Ingest writes through this crate; the Visiting environment and disclosure control read
//! through it, so the query side depends on the format, not on the write path.

mod ceiling;
mod facility;
mod layout;
pub mod parents;
mod registry;
mod strata;
pub mod wire;

use std::path::{Path, PathBuf};

pub use ceiling::Ceiling;
pub use facility::{FACILITY_MARK_COLUMN, facility_mark};
pub use layout::{
    FieldInfo, MANIFEST, Manifest, PartInfo, STAGING_PREFIX, Store, StrataFile, hex, swap_in,
    write_strata,
};
pub use registry::Registry;
pub use strata::{MAX_STRATA, NO_FACILITY, Strata, StrataError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("the store was made with custodian key {store}, but the key file is {key}")]
    KeyMismatch { store: String, key: String },
    #[error("store is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0} has not been ingested")]
    NotIngested(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
