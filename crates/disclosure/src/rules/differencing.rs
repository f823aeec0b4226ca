//! Differencing: a cell whose persons differ from a released cell's (or a released table's
//! total, or another cell of this result) by fewer than the row's minimum would give those
//! persons away. A row's group is compared first, then each aggregate's own persons.

use std::collections::HashMap;

use super::cells::{ResultCells, RowSets};
use crate::ledger::{Described, Ledger};

/// Whether a masked cell's reason is differencing (what monitoring counts as an attack's trace).
pub fn is_differencing(reason: &str) -> bool {
    reason.starts_with("differs from an earlier released cell")
}

pub(super) fn near_reason(threshold: u64) -> String {
    format!(
        "differs from an earlier released cell (or another cell of this table) by fewer than {threshold} persons"
    )
}

/// The sets described on the way, by (source, row) as `ResultCells::shown_sets` numbers
/// them: a released one joins the ledger described as it is here.
pub(super) type DescribedSets<'s> = HashMap<(usize, usize), Described<'s>>;

/// Masks what differs too little, and returns the sets it described.
pub(super) fn apply<'s>(
    cells: &mut ResultCells<'_>,
    sets: &'s RowSets,
    ledger: &Ledger,
) -> DescribedSets<'s> {
    let mut this_result = Ledger::default();
    let groups = cells.shadow.person_sets.len();
    let mut described = DescribedSets::new();
    for row in 0..cells.rows {
        if !cells.shows(row) {
            continue;
        }
        let threshold = cells.row_min_persons[row];
        // Each set is described once, for both ledgers and for keeping.
        let near = |set: &Described<'_>, this_result: &Ledger| {
            !set.is_empty()
                && (ledger.differs_by_fewer(set, threshold)
                    || this_result.differs_by_fewer(set, threshold))
        };
        let row_groups: Vec<Described<'_>> = sets.groups[row].iter().map(Described::new).collect();
        if row_groups.iter().any(|set| near(set, &this_result)) {
            cells.mask_row(row, &near_reason(threshold));
            continue;
        }
        for (k, set) in row_groups.iter().enumerate() {
            this_result.add(set);
            described.insert((k, row), *set);
        }
        for (i, (set, r)) in sets.aggregates[row]
            .iter()
            .zip(&cells.aggregate_persons)
            .enumerate()
        {
            if !r.differenced || r.showing.iter().all(|c| cells.masked[row].contains_key(c)) {
                continue;
            }
            // The group's own persons (a sum everyone in it adds to) were differenced as the
            // group's.
            if sets.groups[row].contains(set) {
                continue;
            }
            let set = Described::new(set);
            if near(&set, &this_result) {
                for &c in &r.showing {
                    cells.masked[row]
                        .entry(c)
                        .or_insert_with(|| near_reason(threshold));
                }
            } else {
                this_result.add(&set);
                described.insert((groups + i, row), set);
            }
        }
    }
    described
}
