//! Disclosure control: what stands behind every output cell (lineage and shadow counts) and
//! which cells of a real-data result may leave the Visiting environment.

pub mod ledger;
pub mod policy;
pub mod rules;
pub mod sets;
pub mod shadow;
pub mod strata;
pub mod total;

pub use ledger::{Ledger, LedgerStoreError, ReleasedSets};
pub use policy::{DisclosurePolicy, Rules};
pub use rules::{Populations, Strictness, SuppressedCell, Verdict, check};
pub use shadow::{Bounds, Ceilings, FACILITY, PERSON, Shadow, Source, Unsupported, shadow};

#[derive(Debug, thiserror::Error)]
pub enum DisclosureError {
    #[error("disclosure policy: {0}")]
    Policy(String),
    #[error("disclosure check: {0}")]
    Check(String),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}
