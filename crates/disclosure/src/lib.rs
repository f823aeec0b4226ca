//! Disclosure control: what stands behind every output cell (lineage and shadow counts) and
//! which cells of a real-data result may leave the Visiting environment.
//!
//! The sandbox calls two functions, one on each side of running a query: [`prepare`] before
//! (the shadow of the checked plan, or why the result is held whatever its rows), and
//! [`check`] after (the rules, step by step, in `rules/`).
//!
//! Glossary:
//! - **lineage** (`shadow/lineage.rs`): what each output column is computed from, and its
//!   role: a group key, a count, a magnitude, a row-level value, a listing.
//! - **shadow**: the researcher's plan rewritten so that, in the same pass, each output row
//!   also carries the persons and facilities behind its cells (hidden `__niji_…` columns).
//! - **person set**: the persons behind a cell, as a roaring bitmap of person indexes
//!   (`niji_set`); a **facility set** likewise (`niji_first_members`: only as many as the
//!   rule needs).
//! - **contributions**: each person's total of |value| in a magnitude cell, or bounds on the
//!   largest ones (`niji_contributions`, `niji_cell`, `niji_bounded_cell`), for dominance
//!   and p-percent.
//! - **ceiling**: the largest per-person totals of a stored column, written by ingest: a
//!   cell's n largest contributions are at most the first n of them.
//! - **strata**: the distinct combinations of a table's coded columns, with their persons and
//!   facilities: a cell that is a union of whole strata is counted without reading rows.
//! - **bounded / exact**: a shadow that bounds contributions (fast), and the one that finds
//!   them (run again when bounds leave a rule unsettled: [`Verdict::Recheck`]).
//! - **ledger**: the person sets a project has released, for differencing.
//! - **withheld**: a row whose group rests on too few persons, left out whole.
//! - **total** (`total.rs`): expressions rewritten so that no value makes a query fail.

pub mod ledger;
pub mod policy;
pub mod rules;
pub mod shadow;
pub mod strata;
pub mod total;
pub mod udaf;
pub mod wire;

pub use ledger::{Ledger, LedgerStoreError, ReleasedSets};
pub use policy::{DisclosurePolicy, Rules};
pub use rules::{Populations, Strictness, SuppressedCell, Verdict, check, is_differencing};
pub use shadow::{Bounds, Ceilings, FACILITY, PERSON, Shadow, Source, Unsupported, shadow};

/// What disclosure control needs before a real-data query runs: the shadow of `plan` (planned
/// from the researcher's SQL over the shadow views; `visible`: the checked plan's schema,
/// which it must match column for column), or why the result is held whatever its rows (its
/// shape never leaves, or its persons cannot be counted).
pub fn prepare(
    plan: datafusion::logical_expr::LogicalPlan,
    visible: &arrow::datatypes::Schema,
    facility_cap: usize,
    bounded: Option<&Bounds>,
    catalog: &niji_catalog::Catalog,
) -> Result<Shadow, Unsupported> {
    let shadow = shadow(plan, visible, facility_cap, bounded)?;
    match rules::held_for_shape(&shadow, catalog) {
        Some(why) => Err(Unsupported(why)),
        None => Ok(shadow),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DisclosureError {
    #[error("disclosure policy: {0}")]
    Policy(String),
    #[error("disclosure check: {0}")]
    Check(String),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}
