//! The release rules, applied to a result and its shadow columns: which cells may leave.
//! [`check`] is a pipeline of named steps, each in its own file: hold (a shape that never
//! leaves), thresholds (persons, municipalities, facilities, dominance), HAVING, differencing,
//! table totals (with complementary suppression), release.

mod cells;
mod complementary;
mod differencing;
mod having;
mod hold;
mod magnitudes;
mod release;
mod table_totals;
mod thresholds;

use std::collections::HashMap;

use arrow::array::RecordBatch;
use niji_catalog::Catalog;
use serde::Serialize;

use crate::DisclosureError;
use crate::ledger::{Kept, Ledger};
use crate::policy::DisclosurePolicy;
use crate::shadow::Shadow;

pub use differencing::is_differencing;
pub use hold::held_for_shape;

/// A masked cell and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SuppressedCell {
    pub row: usize,
    pub column: String,
    pub reason: String,
}

#[derive(Debug)]
pub enum Verdict {
    /// The result may leave: cells that may not are masked (null) and listed.
    Release {
        batch: RecordBatch,
        suppressed: Vec<SuppressedCell>,
        /// Person sets of the released cells and, per source of persons (a person source's
        /// groups, an aggregate's own persons), their union, for later differencing (each
        /// described as the ledger keeps it, once).
        released_sets: Vec<Kept>,
        /// Where counts are rounded: each count column's total, recomputed from its released
        /// rounded cells (an exact total would give back what rounding hid).
        totals: Vec<(String, i64)>,
        /// Whether rows of groups resting on too few persons are left out of this result: by
        /// its shape (group keys over persons), never by whether it had any, which would tell
        /// that a small group exists.
        small_groups_withheld: bool,
    },
    /// Nothing leaves; the reason says why.
    Hold(String),
    /// Bounds on a cell's largest contributions do not settle dominance or p-percent, or do
    /// not tell who contributes, or the facilities found for it (some of them) are too few:
    /// nothing was decided, and the query must be checked again on
    /// its exact shadow (built without bounds), which never gives this.
    Recheck,
}

/// Which rules apply. Output checkers may release what only the judgement rules masked
/// (facilities, dominance, p-percent, unchecked contributions); the person thresholds,
/// municipality rules, differencing and complementary suppression hold whatever they decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    Automatic,
    Approved,
}

/// Inhabitants per municipality code (from the reference table).
#[derive(Debug, Clone, Default)]
pub struct Populations(pub HashMap<String, u64>);

/// Applies the rules to `batches` (the shadow plan's output), step by step.
pub fn check(
    shadow: &Shadow,
    batches: &[RecordBatch],
    catalog: &Catalog,
    policy: &DisclosurePolicy,
    ledger: &Ledger,
    populations: &Populations,
    strictness: Strictness,
) -> Result<Verdict, DisclosureError> {
    if let Some(reason) = held_for_shape(shadow, catalog) {
        return Ok(Verdict::Hold(reason));
    }
    let mut cells = cells::ResultCells::read(shadow, batches, catalog, policy)?;
    let sets = match thresholds::apply(&mut cells, populations, strictness)? {
        thresholds::Settled::Yes(sets) => sets,
        thresholds::Settled::Recheck => return Ok(Verdict::Recheck),
    };
    having::apply(&mut cells)?;
    let described = differencing::apply(&mut cells, &sets, ledger);
    let totals = table_totals::apply(&mut cells, &sets, ledger);
    let released = release::released_sets(&cells, &sets, described, totals);
    release::verdict(&cells, released)
}
