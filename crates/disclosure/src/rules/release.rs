//! Release: every set behind a cell that shows joins the ledger (with each source's total), and
//! the result leaves with its masked cells null, its withheld rows and the rows its HAVING
//! leaves out gone, and its counts rounded where the policy says.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, Schema};

use super::cells::{ResultCells, RowSets};
use super::differencing::DescribedSets;
use super::table_totals::union;
use super::{SuppressedCell, Verdict};
use crate::DisclosureError;
use crate::ledger::{Described, Kept};
use crate::shadow::{Role, is_hidden};

/// The sets that leave with the result: per source, its total over the rows (when more than
/// one shows it) and each shown cell's set.
pub(super) fn released_sets(
    cells: &ResultCells<'_>,
    sets: &RowSets,
    mut described: DescribedSets<'_>,
    mut totals: Vec<Option<Kept>>,
) -> Vec<Kept> {
    let mut released = Vec::new();
    for (source, mut shown) in cells.shown_sets(sets).into_iter().enumerate() {
        shown.retain(|(_, set)| !set.is_empty());
        if shown.len() > 1 {
            let total = totals.get_mut(source).and_then(Option::take);
            released.push(total.unwrap_or_else(|| Kept::new(union(&shown))));
        }
        released.extend(shown.into_iter().map(|(row, set)| {
            described
                .remove(&(source, row))
                .map_or_else(|| Kept::new(set.clone()), |d: Described<'_>| d.to_kept())
        }));
    }
    released
}

/// The verdict: the result as it leaves, with what was masked and why.
pub(super) fn verdict(
    cells: &ResultCells<'_>,
    released_sets: Vec<Kept>,
) -> Result<Verdict, DisclosureError> {
    let (shadow, rows) = (cells.shadow, cells.rows);
    // Rows withheld, and rows left out by a HAVING, go; the others keep their order, numbered
    // anew.
    let keep: Vec<bool> = (0..rows).map(|row| cells.kept(row)).collect();
    let position: Vec<usize> = keep
        .iter()
        .scan(0, |next, &k| {
            let at = *next;
            *next += usize::from(k);
            Some(at)
        })
        .collect();
    let keep = BooleanArray::from(keep);
    let mut suppressed = Vec::new();
    let mut totals = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(cells.visible);
    for c in 0..cells.visible {
        let mut mask = vec![false; rows];
        for row in (0..rows).filter(|&row| keep.value(row)) {
            if let Some(reason) = cells.masked[row].get(&c) {
                mask[row] = true;
                suppressed.push(SuppressedCell {
                    row: position[row],
                    column: shadow.lineage[c].name.clone(),
                    reason: reason.clone(),
                });
            }
        }
        let mut array = cells.batch.column(c).clone();
        if mask.iter().any(|m| *m) {
            array = arrow::compute::nullif(&array, &BooleanArray::from(mask))?;
        }
        if keep.false_count() > 0 {
            array = arrow::compute::filter(&array, &keep)?;
        }
        if cells.rules.rounding > 1 && shadow.lineage[c].role() == Role::Count {
            array = round(&array, cells.rules.rounding);
            if array.data_type() == &DataType::Int64 {
                let total = array.as_primitive::<Int64Type>().iter().flatten().sum();
                totals.push((shadow.lineage[c].name.clone(), total));
            }
        }
        columns.push(array);
    }
    suppressed.sort_by(|a, b| (a.row, &a.column).cmp(&(b.row, &b.column)));
    // Masked cells are null, whatever the column's type promised.
    let fields: Vec<_> = cells
        .schema
        .fields()
        .iter()
        .filter(|f| !is_hidden(f.name()))
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(Verdict::Release {
        batch,
        suppressed,
        released_sets,
        totals,
        small_groups_withheld: !cells.keys.is_empty() && !shadow.person_sets.is_empty(),
    })
}

/// Counts rounded to the nearest multiple of `base`.
fn round(array: &ArrayRef, base: u64) -> ArrayRef {
    if array.data_type() != &DataType::Int64 {
        return array.clone();
    }
    let base = base as i64;
    let rounded: arrow::array::Int64Array = array
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.map(|v| (v + base / 2).div_euclid(base) * base))
        .collect();
    Arc::new(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_to_the_nearest_multiple_and_nulls_stay() {
        let counts: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![
            Some(12),
            Some(13),
            None,
            Some(0),
            Some(7),
        ]));
        let rounded = round(&counts, 5);
        let rounded: Vec<Option<i64>> = rounded.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(rounded, [Some(10), Some(15), None, Some(0), Some(5)]);
        let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["x"]));
        assert_eq!(
            round(&text, 5).as_ref(),
            text.as_ref(),
            "only counts are rounded"
        );
    }
}
