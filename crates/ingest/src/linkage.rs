//! ID5 and the person registry.
//!
//! ID5 is the keyed hash of a person's OLDEST individual insured number (保険者番号, 記号, 番号,
//! 枝番), found through the history of insured numbers: every number a person held maps to
//! that one ID5, so records stay linked across insurer changes, marriage and the move to
//! 後期高齢者医療 at 75. The registry gives each ID5 a compact index once, for good.

use ahash::AHashMap as HashMap;

use niji_pseudo::{CivilDate, IdHasher};
use niji_store::Registry;
use rayon::prelude::*;

/// The normalised 個人単位被保険者番号 as lookup key: fields joined by 0x1F.
pub fn individual_key(insurer: &str, symbol: &str, number: &str, branch: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(insurer.len() + symbol.len() + number.len() + branch.len() + 3);
    individual_key_into(&mut k, insurer, symbol, number, branch);
    k
}

/// [`individual_key`] into a reused buffer (once per row on the hot path).
pub fn individual_key_into(
    k: &mut Vec<u8>,
    insurer: &str,
    symbol: &str,
    number: &str,
    branch: &str,
) {
    k.clear();
    for (i, part) in [insurer, symbol, number, branch].iter().enumerate() {
        if i > 0 {
            k.push(0x1f);
        }
        k.extend_from_slice(part.as_bytes());
    }
}

/// One valid row of the history table, as needed to find each person's oldest number.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub person_ref: String,
    pub number_key: Vec<u8>,
    pub valid_from: CivilDate,
}

/// Every individual insured number → the person's index in the registry. Looked up once per
/// row, so numbers are kept as 128-bit XXH3 fingerprints inline in the table (one hash, no
/// pointer to chase); a chance collision among n numbers has probability about n²/2¹²⁹.
#[derive(Debug, Default)]
pub struct Id5Resolver {
    by_number: HashMap<u128, u32>,
}

fn fingerprint(number_key: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(number_key)
}

impl Id5Resolver {
    pub fn build(
        entries: &[HistoryEntry],
        hasher: &IdHasher,
        number_hasher: &IdHasher,
        registry: &mut Registry,
    ) -> Self {
        // Sort (in parallel) by person, then start date, then number: each person's first entry
        // is the oldest number. Sorting beats a hash map of person references at this size.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.par_sort_unstable_by(|&a, &b| {
            let (x, y) = (&entries[a], &entries[b]);
            (x.person_ref.as_str(), x.valid_from, x.number_key.as_slice()).cmp(&(
                y.person_ref.as_str(),
                y.valid_from,
                y.number_key.as_slice(),
            ))
        });
        let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
        for k in 0..order.len() {
            if k == 0 || entries[order[k]].person_ref != entries[order[k - 1]].person_ref {
                groups.push(k..k);
            }
            if let Some(g) = groups.last_mut() {
                g.end = k + 1;
            }
        }
        // The lookup key is the fields joined by 0x1F, which is exactly the identifier input.
        let id5s: Vec<[u8; 32]> = groups
            .par_iter()
            .map(|g| hasher.hash(&[&entries[order[g.start]].number_key]))
            .collect();
        registry.extend(id5s.iter().copied());
        let reg: &Registry = registry;
        let order = &order;
        let numbers: Vec<(u128, [u8; 32], u32)> = groups
            .par_iter()
            .zip(&id5s)
            .filter_map(|(g, id5)| reg.get(id5).map(|idx| (g.clone(), idx)))
            .flat_map_iter(|(g, idx)| {
                g.map(move |k| {
                    let number = &entries[order[k]].number_key;
                    (fingerprint(number), number_hasher.hash(&[number]), idx)
                })
            })
            .collect();
        let mut by_number = HashMap::with_capacity(numbers.len());
        for (fp, number_hash, idx) in numbers {
            by_number.insert(fp, idx);
            registry.remember_number(number_hash, idx);
        }
        Self { by_number }
    }

    pub fn resolve(&self, number_key: &[u8]) -> Option<u32> {
        self.by_number.get(&fingerprint(number_key)).copied()
    }

    pub fn numbers(&self) -> usize {
        self.by_number.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(person: &str, number: &str, from: (i32, u32, u32)) -> HistoryEntry {
        HistoryEntry {
            person_ref: person.into(),
            number_key: individual_key("01130012", "", number, "00"),
            valid_from: CivilDate::new(from.0, from.1, from.2).unwrap(),
        }
    }

    #[test]
    fn every_number_of_a_person_resolves_to_the_id5_of_the_oldest() {
        let hasher = IdHasher::from_key_bytes(&[9; 32]);
        let mut reg = Registry::default();
        let entries = vec![
            entry("A", "200", (2020, 1, 1)),
            entry("A", "100", (2010, 1, 1)),
            entry("B", "300", (2015, 1, 1)),
        ];
        let r = Id5Resolver::build(&entries, &hasher, &hasher, &mut reg);
        let a_new = r
            .resolve(&individual_key("01130012", "", "200", "00"))
            .unwrap();
        let a_old = r
            .resolve(&individual_key("01130012", "", "100", "00"))
            .unwrap();
        let b = r
            .resolve(&individual_key("01130012", "", "300", "00"))
            .unwrap();
        assert_eq!(a_new, a_old);
        assert_ne!(a_new, b);
        let expected = hasher.hash(&[b"01130012", b"", b"100", b"00"]);
        assert_eq!(reg.id5(a_new), &expected);
        assert!(
            r.resolve(&individual_key("01130012", "", "999", "00"))
                .is_none()
        );
    }
}
