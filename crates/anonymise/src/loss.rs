//! The information an extract loses, as the normalised certainty penalty: per quasi-identifier
//! cell, 0 where the finest label is kept, 1 where it is suppressed, and for a generalised label
//! the share of the column's finest labels it covers. A record left out counts 1 in each.

use crate::encode::Quasi;
use crate::suppress::Suppressed;

/// The mean penalty over every quasi-identifier cell of the input.
pub(crate) fn mean_penalty(quasi: &[Quasi], node: &[usize], s: &Suppressed) -> f64 {
    let rows = s.kept.len();
    if rows == 0 || quasi.is_empty() {
        return 0.0;
    }
    let penalties: Vec<Vec<f64>> = quasi
        .iter()
        .zip(node)
        .map(|(q, &l)| {
            (0..q.labels[l].len() as u32)
                .map(|c| q.penalty(l, c))
                .collect()
        })
        .collect();
    let mut total = s.records_suppressed as f64 * quasi.len() as f64;
    for (i, cells) in s.cells.iter().enumerate() {
        for (row, &c) in cells.iter().enumerate() {
            if s.kept[row] {
                total += if c == s.star[i] {
                    1.0
                } else {
                    penalties[i][c as usize]
                };
            }
        }
    }
    total / (rows as f64 * quasi.len() as f64)
}
