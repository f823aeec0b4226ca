//! Pseudonymisation primitives: the normalisation contract, custodian keys and the keyed-hash
//! identifiers of DESIGN.md (ID1, ID2, ID5, 研究用ID).
//!
//! Nothing here logs or formats a key or a raw identifier: errors name the field, never its value.

pub mod date;
pub mod ident;
pub mod keys;
pub mod normalize;

pub use date::{CivilDate, DateError};
pub use ident::{IdHasher, IdKind, hex32};
pub use keys::{CustodianKey, KeyError, Purpose};

/// Errors of this crate. Messages never include the value that failed.
#[derive(Debug, thiserror::Error)]
pub enum PseudoError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Date(#[from] DateError),
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}
