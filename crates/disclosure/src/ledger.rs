//! The person sets of a project's released cells, kept inside the platform for differencing:
//! a new cell whose persons differ from a released one's by fewer than the threshold would
//! give those persons away.

use roaring::RoaringBitmap;

/// Sets ordered by size, so that only those of nearly the same size are compared.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    sets: Vec<RoaringBitmap>,
}

impl Ledger {
    pub fn new(sets: impl IntoIterator<Item = RoaringBitmap>) -> Self {
        let mut ledger = Self::default();
        ledger.extend(sets);
        ledger
    }

    /// Keeps many sets at once (sorted once, not inserted one by one), each set once.
    pub fn extend(&mut self, sets: impl IntoIterator<Item = RoaringBitmap>) {
        self.sets.extend(sets);
        self.sets.sort_by_key(RoaringBitmap::len);
        let mut kept: Vec<RoaringBitmap> = Vec::with_capacity(self.sets.len());
        let mut same_size_from = 0;
        for set in self.sets.drain(..) {
            if kept.last().is_none_or(|last| last.len() != set.len()) {
                same_size_from = kept.len();
            }
            if !kept[same_size_from..].contains(&set) {
                kept.push(set);
            }
        }
        self.sets = kept;
    }

    /// Whether the same set was released before (releasing it again gives nothing away).
    pub fn contains(&self, set: &RoaringBitmap) -> bool {
        let n = set.len();
        let from = self.sets.partition_point(|s| s.len() < n);
        self.sets[from..]
            .iter()
            .take_while(|s| s.len() == n)
            .any(|s| s == set)
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Keeps `set`, once: a set released again is compared once.
    pub fn add(&mut self, set: RoaringBitmap) {
        if self.contains(&set) {
            return;
        }
        let at = self.sets.partition_point(|s| s.len() < set.len());
        self.sets.insert(at, set);
    }

    /// Whether some kept set differs from `set` by at least one and fewer than `threshold`
    /// persons (the same set again gives nothing away).
    pub fn differs_by_fewer(&self, set: &RoaringBitmap, threshold: u64) -> bool {
        let n = set.len();
        let from = self.sets.partition_point(|s| s.len() + threshold <= n);
        self.sets[from..]
            .iter()
            .take_while(|s| s.len() < n + threshold)
            .any(|s| {
                let d = s.symmetric_difference_len(set);
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
        again.add(set(500..520));
        assert_eq!(again.len(), 3, "a set released again is kept once");
        assert!(again.contains(&set(500..520)) && !again.contains(&set(500..519)));
    }
}
