//! Table totals: summing a column of the table gives its total. Where that total differs from
//! an earlier release by too few persons, the column's smallest cell goes too, until none does
//! (each round masks a cell, so that its row leaves the source, and this ends). Each round
//! first applies complementary suppression. A table of group keys alone has no column to sum.

use roaring::RoaringBitmap;

use super::cells::{ResultCells, RowSets};
use super::complementary::complementary;
use crate::ledger::{Kept, Ledger};

/// The union of a source's shown sets.
pub(super) fn union(cells: &[(usize, &RoaringBitmap)]) -> RoaringBitmap {
    cells
        .iter()
        .fold(RoaringBitmap::new(), |total, (_, set)| total | *set)
}

/// Masks until no line has a lone masked cell and no total differs too little; returns the
/// last round's totals, per source, which are those released.
pub(super) fn apply(
    cells: &mut ResultCells<'_>,
    sets: &RowSets,
    ledger: &Ledger,
) -> Vec<Option<Kept>> {
    let groups = cells.shadow.person_sets.len();
    let min_persons = cells.rules.min_persons;
    let mut totals: Vec<Option<Kept>> = Vec::new();
    loop {
        complementary(
            &mut cells.masked,
            &cells.aggregate_columns,
            &sets.groups,
            &cells.key_texts,
            &cells.withheld,
        );
        if cells.aggregate_columns.is_empty() {
            break;
        }
        totals.clear();
        let mut near_total = None;
        for (source, shown) in cells.shown_sets(sets).into_iter().enumerate() {
            if shown.len() < 2 {
                totals.push(None);
                continue;
            }
            let total = Kept::new(union(&shown));
            if ledger.differs_by_fewer(&total.described(), min_persons) {
                near_total = shown
                    .iter()
                    .min_by_key(|(_, set)| set.len())
                    .map(|(row, _)| (source, *row));
                break;
            }
            totals.push(Some(total));
        }
        let Some((source, row)) = near_total else {
            break;
        };
        let reason = format!(
            "the table's total would differ from a released cell by fewer than {min_persons} persons"
        );
        if source < groups {
            cells.mask_row(row, &reason);
        } else {
            for &c in &cells.aggregate_persons[source - groups].showing {
                cells.masked[row].entry(c).or_insert_with(|| reason.clone());
            }
        }
    }
    totals
}
