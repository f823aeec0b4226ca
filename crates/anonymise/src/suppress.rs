//! Local suppression: the records still in groups smaller than k at the chosen generalisation
//! lose values rather than being dropped. Quasi-identifiers are blanked (`*`) one after
//! another, the one with the most distinct values first, for the records at risk only; a
//! record whose group reaches k keeps the rest. Records that no blanking protects (or whose
//! remaining quasi-identifiers may not be blanked) are left out.
//!
//! Only whole groups smaller than k ever move, so no group that was large enough loses a
//! member, and a group formed of blanked records is counted like any other.

use niji_catalog::anonymisation::Level;

use crate::encode::Quasi;
use crate::lattice::Groups;

/// The records' codes after suppression, which are kept, and what it cost.
#[derive(Debug)]
pub(crate) struct Suppressed {
    /// `[quasi][row]`: the code at the chosen level, or the quasi-identifier's star code.
    pub(crate) cells: Vec<Vec<u32>>,
    pub(crate) star: Vec<u32>,
    pub(crate) kept: Vec<bool>,
    /// Values blanked in kept records.
    pub(crate) cells_suppressed: u64,
    pub(crate) records_suppressed: u64,
}

/// Suppresses locally at `node`, whose `groups` are given.
pub(crate) fn suppress(quasi: &[Quasi], node: &[usize], mut groups: Groups, k: u64) -> Suppressed {
    let mut cells: Vec<Vec<u32>> = quasi
        .iter()
        .zip(node)
        .map(|(q, &l)| q.codes[l].clone())
        .collect();
    let mut at_risk = groups.at_risk(k);
    let mut order: Vec<usize> = (0..quasi.len())
        // A column generalised to `*` already says nothing.
        .filter(|&i| quasi[i].suppressible && quasi[i].levels[node[i]] != Level::Suppressed)
        .collect();
    // Most distinct values first: the most identifying, and the one blanking merges most.
    order.sort_by_key(|&i| (std::cmp::Reverse(quasi[i].labels[node[i]].len()), i));
    for qi in order {
        if at_risk.is_empty() {
            break;
        }
        let star = groups.star[qi];
        for &row in &at_risk {
            let old = cells[qi][row];
            if old == star {
                continue;
            }
            let before = groups.keys[row];
            let after =
                before - u128::from(old) * groups.place[qi] + u128::from(star) * groups.place[qi];
            cells[qi][row] = star;
            groups.keys[row] = after;
            if let Some(n) = groups.sizes.get_mut(&before) {
                *n -= 1;
            }
            *groups.sizes.entry(after).or_default() += 1;
        }
        at_risk.retain(|&row| u64::from(groups.size_of_row(row)) < k);
    }
    let rows = groups.keys.len();
    let mut kept = vec![true; rows];
    for &row in &at_risk {
        kept[row] = false;
    }
    let cells_suppressed = (0..rows)
        .filter(|&row| kept[row])
        .map(|row| {
            (0..quasi.len())
                .filter(|&qi| cells[qi][row] == groups.star[qi])
                .count() as u64
        })
        .sum();
    Suppressed {
        cells,
        star: groups.star,
        kept,
        cells_suppressed,
        records_suppressed: at_risk.len() as u64,
    }
}
