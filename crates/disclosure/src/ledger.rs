//! The person sets of a project's released cells, kept inside the platform for differencing:
//! a new cell whose persons differ from a released one's by fewer than the threshold would
//! give those persons away.

use roaring::RoaringBitmap;

/// Sets ordered by size, so that only those of nearly the same size are compared, and within a
/// size by a fingerprint of their members, so that finding the same set again compares one or
/// two sets, not every set of that size (small sizes are common: thousands share a size).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    sets: Vec<Kept>,
}

#[derive(Debug, Clone)]
struct Kept {
    len: u64,
    print: u64,
    set: RoaringBitmap,
}

/// A set's size and fingerprint. Not a keyed hash: it only narrows which sets are compared
/// member by member.
fn key_of(set: &RoaringBitmap) -> (u64, u64) {
    let print = set.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, m| {
        (h ^ u64::from(m)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (set.len(), print)
}

impl Kept {
    fn new(set: RoaringBitmap) -> Self {
        let (len, print) = key_of(&set);
        Self { len, print, set }
    }

    fn key(&self) -> (u64, u64) {
        (self.len, self.print)
    }
}

impl Ledger {
    pub fn new(sets: impl IntoIterator<Item = RoaringBitmap>) -> Self {
        let mut ledger = Self::default();
        ledger.extend(sets);
        ledger
    }

    /// Keeps many sets at once (sorted once, not inserted one by one), each set once.
    pub fn extend(&mut self, sets: impl IntoIterator<Item = RoaringBitmap>) {
        self.sets.extend(sets.into_iter().map(Kept::new));
        self.sets.sort_by_key(Kept::key);
        let mut kept: Vec<Kept> = Vec::with_capacity(self.sets.len());
        let mut same_key_from = 0;
        for k in self.sets.drain(..) {
            if kept.last().is_none_or(|last| last.key() != k.key()) {
                same_key_from = kept.len();
            }
            if !kept[same_key_from..].iter().any(|s| s.set == k.set) {
                kept.push(k);
            }
        }
        self.sets = kept;
    }

    /// Whether `set`, whose key is `key`, is kept.
    fn holds(&self, key: (u64, u64), set: &RoaringBitmap) -> bool {
        let from = self.sets.partition_point(|s| s.key() < key);
        self.sets[from..]
            .iter()
            .take_while(|s| s.key() == key)
            .any(|s| s.set == *set)
    }

    /// Whether the same set was released before.
    #[cfg(test)]
    fn contains(&self, set: &RoaringBitmap) -> bool {
        self.holds(key_of(set), set)
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Keeps `set`, once: a set released again is compared once. Whether it is new (the same
    /// set released before gives nothing away, and need not be recorded again).
    pub fn add(&mut self, set: &RoaringBitmap) -> bool {
        let key = key_of(set);
        if self.holds(key, set) {
            return false;
        }
        let at = self.sets.partition_point(|s| s.key() < key);
        self.sets.insert(
            at,
            Kept {
                len: key.0,
                print: key.1,
                set: set.clone(),
            },
        );
        true
    }

    /// Whether some kept set differs from `set` by at least one and fewer than `threshold`
    /// persons (the same set again gives nothing away).
    pub fn differs_by_fewer(&self, set: &RoaringBitmap, threshold: u64) -> bool {
        let n = set.len();
        let from = self.sets.partition_point(|s| s.len + threshold <= n);
        self.sets[from..]
            .iter()
            .take_while(|s| s.len < n + threshold)
            .any(|s| {
                let d = s.set.symmetric_difference_len(set);
                d > 0 && d < threshold
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(range: std::ops::Range<u32>) -> RoaringBitmap {
        range.collect()
    }

    #[test]
    fn near_sets_are_found_and_equal_or_distant_ones_are_not() {
        let ledger = Ledger::new([set(0..100), set(500..520), set(1000..5000)]);
        assert!(ledger.differs_by_fewer(&set(0..99), 10), "all minus one");
        assert!(ledger.differs_by_fewer(&set(0..105), 10), "five added");
        assert!(
            !ledger.differs_by_fewer(&set(0..100), 10),
            "the same cell again"
        );
        assert!(!ledger.differs_by_fewer(&set(0..50), 10));
        assert!(
            !ledger.differs_by_fewer(&set(200..299), 10),
            "same size, other persons"
        );
        assert!(ledger.differs_by_fewer(&set(1000..4991), 10));
        let mut again = ledger;
        assert!(!again.add(&set(500..520)));
        assert_eq!(again.len(), 3, "a set released again is kept once");
        assert!(again.contains(&set(500..520)) && !again.contains(&set(500..519)));
    }

    /// Many sets of one size (small cells are common): each distinct one is kept once, found
    /// again, and near ones are still found among them.
    #[test]
    fn sets_of_one_size_are_told_apart() {
        let same_size: Vec<RoaringBitmap> = (0..500).map(|i| set(i * 7..i * 7 + 10)).collect();
        let twice = same_size.iter().chain(&same_size).cloned();
        let mut ledger = Ledger::new(twice);
        assert_eq!(ledger.len(), 500, "duplicates kept once");
        assert!(same_size.iter().all(|s| ledger.contains(s)));
        assert!(!ledger.contains(&set(3..13)), "same size, not released");
        assert!(ledger.add(&set(3..13)));
        assert!(!ledger.add(&set(3..13)), "kept once");
        assert_eq!(ledger.len(), 501);
        let mut one_swapped = set(70..79);
        one_swapped.insert(1_000_000);
        assert!(ledger.differs_by_fewer(&one_swapped, 10));
    }
}
