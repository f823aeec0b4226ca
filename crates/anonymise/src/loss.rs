//! The information an extract loses, as the normalised certainty penalty: per quasi-identifier
//! cell, 0 where the finest label is kept, 1 where it is suppressed, and for a generalised label
//! the share of the column's finest labels it covers. A record left out counts 1 in each.

use crate::encode::Quasi;
use crate::suppress::Suppressed;

/// The mean penalty over every quasi-identifier cell of the input. Cells are counted per code
/// first and the penalties summed in code order, so that the sum (and the node it chooses)
/// does not depend on the order the rows came in.
pub(crate) fn mean_penalty(quasi: &[Quasi], node: &[usize], s: &Suppressed) -> f64 {
    let rows = s.kept.len();
    if rows == 0 || quasi.is_empty() {
        return 0.0;
    }
    let mut total = s.records_suppressed as f64 * quasi.len() as f64;
    for (i, (q, &level)) in quasi.iter().zip(node).enumerate() {
        let mut per_code = vec![0u64; q.labels[level].len()];
        let mut stars = 0u64;
        for (row, &c) in s.cells[i].iter().enumerate() {
            if !s.kept[row] {
                continue;
            }
            if c == s.star[i] {
                stars += 1;
            } else {
                per_code[c as usize] += 1;
            }
        }
        total += stars as f64;
        for (code, &n) in per_code.iter().enumerate() {
            if n > 0 {
                total += n as f64 * q.penalty(level, code as u32);
            }
        }
    }
    total / (rows as f64 * quasi.len() as f64)
}
