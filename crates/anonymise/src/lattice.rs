//! The search of the generalisation lattice (full-domain generalisation, as in OLA and ARX): a
//! node picks one level per quasi-identifier; it is acceptable when the records in groups
//! smaller than k are few enough to suppress; of the acceptable nodes the one that loses least
//! (after local suppression) is chosen. k-anonymity with a suppression limit is monotone (generalising only merges
//! groups), so any node above an acceptable node that needs no suppression loses at least as
//! much and is not tried.

use ahash::AHashMap;

use crate::AnonymiseError;
use crate::encode::Quasi;

/// A node's groups: each row's key (its codes in mixed radix, with one spare code per
/// quasi-identifier for a locally suppressed value) and the size of each group.
pub(crate) struct Groups {
    pub(crate) keys: Vec<u128>,
    pub(crate) sizes: AHashMap<u128, u32>,
    /// Per quasi-identifier: its place value, and the code that means suppressed here.
    pub(crate) place: Vec<u128>,
    pub(crate) star: Vec<u32>,
}

impl Groups {
    pub(crate) fn of(quasi: &[Quasi], node: &[usize]) -> Result<Self, AnonymiseError> {
        let mut place = Vec::with_capacity(quasi.len());
        let mut star = Vec::with_capacity(quasi.len());
        let mut next: u128 = 1;
        for (q, &level) in quasi.iter().zip(node) {
            place.push(next);
            let codes = q.labels[level].len() as u32;
            star.push(codes);
            next = next.checked_mul(u128::from(codes) + 1).ok_or_else(|| {
                AnonymiseError::Input("too many combinations of quasi-identifiers".into())
            })?;
        }
        let rows = quasi.first().map_or(0, |q| q.codes[0].len());
        let keys: Vec<u128> = (0..rows)
            .map(|row| {
                quasi
                    .iter()
                    .zip(node)
                    .zip(&place)
                    .map(|((q, &level), p)| u128::from(q.codes[level][row]) * p)
                    .sum()
            })
            .collect();
        let mut sizes: AHashMap<u128, u32> = AHashMap::with_capacity(keys.len() / 4);
        for key in &keys {
            *sizes.entry(*key).or_default() += 1;
        }
        Ok(Self {
            keys,
            sizes,
            place,
            star,
        })
    }

    pub(crate) fn size_of_row(&self, row: usize) -> u32 {
        self.sizes[&self.keys[row]]
    }

    /// Rows in groups smaller than `k`.
    pub(crate) fn at_risk(&self, k: u64) -> Vec<usize> {
        (0..self.keys.len())
            .filter(|&row| u64::from(self.size_of_row(row)) < k)
            .collect()
    }
}

/// What the search found.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    pub(crate) node: Vec<usize>,
    pub(crate) nodes: usize,
    pub(crate) evaluated: usize,
}

fn dominates(upper: &[usize], lower: &[usize]) -> bool {
    upper.iter().zip(lower).all(|(u, l)| u >= l)
}

/// The acceptable node that loses least (ties: the lower node, then the first in order).
pub(crate) fn search(quasi: &[Quasi], k: u64, max_at_risk: u64) -> Result<Choice, AnonymiseError> {
    let heights: Vec<usize> = quasi.iter().map(|q| q.levels.len()).collect();
    let total = heights
        .iter()
        .try_fold(1usize, |n, h| n.checked_mul(*h))
        .filter(|n| *n <= 100_000)
        .ok_or_else(|| {
            AnonymiseError::Input(
                "the hierarchies make over 100,000 generalisations to try; shorten them".into(),
            )
        })?;
    let mut nodes: Vec<Vec<usize>> = (0..total)
        .map(|mut i| {
            heights
                .iter()
                .map(|h| {
                    let l = i % h;
                    i /= h;
                    l
                })
                .collect()
        })
        .collect();
    nodes.sort_by_key(|n| (n.iter().sum::<usize>(), n.clone()));
    let mut complete: Vec<Vec<usize>> = Vec::new();
    let mut best: Option<(f64, Vec<usize>)> = None;
    let mut evaluated = 0;
    for node in &nodes {
        if complete.iter().any(|c| dominates(node, c)) {
            continue;
        }
        evaluated += 1;
        // A node whose combinations do not fit a key is not tried; coarser ones may fit.
        let Ok(groups) = Groups::of(quasi, node) else {
            continue;
        };
        let at_risk = groups.at_risk(k).len() as u64;
        if at_risk > max_at_risk {
            continue;
        }
        if at_risk == 0 {
            complete.push(node.clone());
        }
        // The loss it will have: after local suppression, which often keeps a record at risk
        // for the price of one value.
        let loss = crate::loss::mean_penalty(
            quasi,
            node,
            &crate::suppress::suppress(quasi, node, groups, k),
        );
        // Strictly less: the first (lowest) of equal losses stays.
        if best.as_ref().is_none_or(|(b, _)| loss < *b - 1e-12) {
            best = Some((loss, node.clone()));
        }
    }
    let (_, node) = best.ok_or_else(|| {
        AnonymiseError::Unreachable(format!(
            "no generalisation of the hierarchies reaches k = {k} with at most {max_at_risk} records suppressed"
        ))
    })?;
    Ok(Choice {
        node,
        nodes: total,
        evaluated,
    })
}
