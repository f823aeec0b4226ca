//! Project pseudonyms: what researchers see in place of a person.
//!
//! A project's pseudonym of a person is HMAC-SHA256(project key, ID5) cut to 64 bits, where
//! the project key is derived from the custodian key for the project and its linkage group.
//! It is computed once per person when the project's catalog is built (a dictionary indexed by
//! the registry's person index), so a query maps a row with one array lookup instead of one
//! HMAC, and groups and joins on a fixed-width 8-byte value instead of 64 hex characters.
//! Same project and linkage group: the same pseudonym in every database; another group or
//! another project: unrelated values.

use crate::{CustodianKey, IdHasher};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("two persons received the same 64-bit pseudonym; choose a new key version for the project")]
pub struct PseudonymCollision;

/// The pseudonym dictionary of one project and linkage group.
#[derive(Debug, Clone)]
pub struct ProjectPseudonyms {
    by_index: Vec<u64>,
}

impl ProjectPseudonyms {
    /// `id5_by_index[i]` is the ID5 of registry person `i`. Refuses the (astronomically rare)
    /// case of two persons with one pseudonym rather than merge them.
    pub fn build(
        key: &CustodianKey,
        project: &str,
        linkage_group: &str,
        id5_by_index: &[[u8; 32]],
    ) -> Result<Self, PseudonymCollision> {
        let label = format!("niji/project-pseudonym/v1\u{1f}{project}\u{1f}{linkage_group}");
        let hasher = IdHasher::from_key_bytes(key.derive_labelled(label.as_bytes()).as_ref());
        let by_index: Vec<u64> = id5_by_index
            .iter()
            .map(|id5| {
                let mac = hasher.hash(&[id5]);
                u64::from_be_bytes([
                    mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mac[6], mac[7],
                ])
            })
            .collect();
        let mut sorted = by_index.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(PseudonymCollision);
        }
        Ok(Self { by_index })
    }

    pub fn len(&self) -> usize {
        self.by_index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }

    /// The pseudonym of registry person `idx`; `None` for an index the dictionary lacks
    /// (fail closed: a person outside the project's registry snapshot has no pseudonym).
    #[inline]
    /// The pseudonyms by person index, as they travel to another engine's executors (never
    /// the key they were made with).
    pub fn as_slice(&self) -> &[u64] {
        &self.by_index
    }

    /// A dictionary received as [`Self::as_slice`] gave it.
    pub fn from_pseudonyms(by_index: Vec<u64>) -> Self {
        Self { by_index }
    }

    pub fn get(&self, idx: u32) -> Option<u64> {
        self.by_index.get(idx as usize).copied()
    }

    /// Fixed-width display form: 16 lower-case hex digits.
    pub fn render(pseudonym: u64) -> String {
        format!("{pseudonym:016x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.to_be_bytes());
                id
            })
            .collect()
    }

    #[test]
    fn one_project_and_group_is_stable_and_injective() {
        let key = CustodianKey::from_bytes([1; 32]);
        let a = ProjectPseudonyms::build(&key, "p1", "ndb+kaigo", &ids(50_000)).unwrap();
        let b = ProjectPseudonyms::build(&key, "p1", "ndb+kaigo", &ids(50_000)).unwrap();
        assert_eq!(a.by_index, b.by_index);
        let mut seen = std::collections::HashSet::new();
        assert!(a.by_index.iter().all(|p| seen.insert(*p)));
        assert_eq!(a.get(50_000), None);
        assert_eq!(ProjectPseudonyms::render(a.get(7).unwrap()).len(), 16);
    }

    #[test]
    fn other_projects_groups_and_keys_share_nothing() {
        let key = CustodianKey::from_bytes([1; 32]);
        let base = ProjectPseudonyms::build(&key, "p1", "g", &ids(10_000)).unwrap();
        let others = [
            ProjectPseudonyms::build(&key, "p2", "g", &ids(10_000)).unwrap(),
            ProjectPseudonyms::build(&key, "p1", "h", &ids(10_000)).unwrap(),
            ProjectPseudonyms::build(&CustodianKey::from_bytes([2; 32]), "p1", "g", &ids(10_000))
                .unwrap(),
            // A project named so that naive concatenation would collide with ("p1", "g").
            ProjectPseudonyms::build(&key, "p1\u{1f}g", "", &ids(10_000)).unwrap(),
        ];
        let mine: std::collections::HashSet<u64> = base.by_index.iter().copied().collect();
        for o in &others {
            let shared = o.by_index.iter().filter(|p| mine.contains(p)).count();
            assert_eq!(shared, 0, "an unrelated dictionary shares pseudonyms");
        }
    }
}
