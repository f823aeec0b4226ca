//! Dominance (n, k) and p-percent on magnitude cells, from each row's per-person
//! contributions.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};

use crate::DisclosureError;
use crate::policy::Rules;
use crate::shadow::Shadow;
use crate::udaf::{Contributions, Form};

/// The sections of a contributions cell (none when it is null).
pub(super) fn contributions_at(
    batch: &RecordBatch,
    column: usize,
    row: usize,
) -> Result<Vec<Contributions>, DisclosureError> {
    let a = batch.column(column).as_binary::<i32>();
    if a.is_null(row) {
        return Ok(Vec::new());
    }
    Contributions::decode(a.value(row)).ok_or_else(|| {
        DisclosureError::Check(
            "the per-person contributions were stored in an earlier form: run the query again"
                .into(),
        )
    })
}

/// What dominance and p-percent find in a magnitude cell.
pub(super) enum Magnitude {
    Masked(String),
    /// Failed on bounds: exact contributions would decide.
    Unsettled,
}

/// Dominance (n, k) and p-percent on a magnitude cell, from the row's decoded
/// contributions. Fails closed: a section that is missing or not a number masks the cell.
pub(super) fn magnitude_problem(
    shadow: &Shadow,
    contributions: &BTreeMap<usize, Vec<Contributions>>,
    column: usize,
    rules: &Rules,
) -> Option<Magnitude> {
    let unchecked = || {
        Magnitude::Masked(
            "its contributions per person cannot be checked (a magnitude over an inner aggregate)"
                .to_string(),
        )
    };
    let mut checked = false;
    for aggregate in &shadow.lineage[column].aggregates {
        for &(s, section) in shadow.contributions.get(aggregate).into_iter().flatten() {
            let Some(c) = contributions.get(&s).and_then(|c| c.get(section)) else {
                return Some(unchecked());
            };
            checked = true;
            if c.total == 0.0 {
                continue;
            }
            // On bounds, the first n sum to at least the n largest contributions: passing on
            // them is passing.
            let top_n: f64 = c.top.iter().take(rules.dominance_n).sum();
            let first = c.top.first().copied().unwrap_or(0.0);
            let first_two: f64 = c.top.iter().take(2).sum();
            // A NaN anywhere compares as neither: the cell is masked.
            let reason = if !at_most(top_n, c.total * rules.dominance_k / 100.0) {
                format!(
                    "dominance: the {} largest contributors make over {}% of it",
                    rules.dominance_n, rules.dominance_k
                )
            } else if !at_most(first * rules.p_percent / 100.0, c.total - first_two) {
                format!(
                    "p-percent: the others could estimate the largest contribution within {}%",
                    rules.p_percent
                )
            } else {
                continue;
            };
            // A NaN masks on any sums; an infinite total (an overflow) may pass on exact ones.
            return Some(if c.form != Form::Exact && !c.total.is_nan() {
                Magnitude::Unsettled
            } else {
                Magnitude::Masked(reason)
            });
        }
    }
    (!checked).then(unchecked)
}

/// `a <= b`, false when either is NaN.
fn at_most(a: f64, b: f64) -> bool {
    matches!(
        a.partial_cmp(&b),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}
