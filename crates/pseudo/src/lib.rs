//! Pseudonymisation primitives: the normalisation contract, custodian keys and the keyed-hash
//! identifiers of DESIGN.md (ID1, ID2, ID5, 研究用ID).
//!
//! Nothing here logs or formats a key or a raw identifier: errors name the field, never its
//! value. Error types, one per concern: [`KeyError`] for key files, [`DateError`] for dates,
//! [`PseudonymCollision`] for project dictionaries.

pub mod date;
pub mod ident;
pub mod keys;
pub mod normalize;
pub mod project;
pub mod registration;

pub use date::{CivilDate, DateError};
pub use ident::{IdHasher, IdKind, hex32};
pub use keys::{CustodianKey, KeyError, Purpose};
pub use project::{ProjectPseudonyms, PseudonymCollision};
pub use registration::{Registration, RegistrationError, research_id};
