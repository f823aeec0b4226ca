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

/// A set with its description (see [`Described`]), owned: a kept set, or a released one on its
/// way to the ledger, described once.
#[derive(Debug, Clone)]
pub struct Kept {
    len: u64,
    print: u64,
    profile: Profile,
    set: RoaringBitmap,
}

/// How many members of a set fall in each of a few buckets (by the stripe of consecutive
/// indexes a member is in, striped round the buckets). Two sets differ by at least the sum of
/// their buckets' differences, so most sets of nearly the same size are told apart by their
/// profiles, without comparing members. Person indexes are given in the byte order of keyed
/// hashes, so a stripe holds persons of every kind.
type Profile = [u32; BUCKETS];
const BUCKETS: usize = 32;
/// Stripes of 2,048 indexes: 32 to a roaring container, whose members in a stripe are counted
/// without visiting them.
const STRIPE_BITS: u32 = 11;
const STRIPE_LAST: u32 = (1 << STRIPE_BITS) - 1;
/// A set with more members than this per stripe it spans is counted stripe by stripe, a
/// smaller one member by member (the same counts either way).
const COUNTED_PER_STRIPE: u64 = 8;

/// At most the size of the symmetric difference of the sets the profiles were taken from.
fn fewest_differing(a: &Profile, b: &Profile) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum()
}

/// A set's size and fingerprint (not a keyed hash: it only narrows which sets are compared
/// member by member), and its profile, from its members' count in each stripe: equal sets have
/// equal counts, whichever way they were counted.
fn describe(set: &RoaringBitmap) -> ((u64, u64), Profile) {
    let mut print: u64 = 0xcbf2_9ce4_8422_2325;
    let mut profile = [0; BUCKETS];
    let mut note = |stripe: u32, count: u64| {
        print = (print ^ (u64::from(stripe) << 32 | count)).wrapping_mul(0x0000_0100_0000_01b3);
        profile[stripe as usize % BUCKETS] += count as u32;
    };
    let len = set.len();
    if let (Some(min), Some(max)) = (set.min(), set.max()) {
        let (first, last) = (min >> STRIPE_BITS, max >> STRIPE_BITS);
        if len > COUNTED_PER_STRIPE * u64::from(last - first + 1) {
            for stripe in first..=last {
                let from = stripe << STRIPE_BITS;
                let count = set.range_cardinality(from..=from | STRIPE_LAST);
                if count > 0 {
                    note(stripe, count);
                }
            }
        } else {
            let mut run: Option<(u32, u64)> = None;
            for m in set {
                let stripe = m >> STRIPE_BITS;
                match &mut run {
                    Some((s, count)) if *s == stripe => *count += 1,
                    _ => {
                        if let Some((s, count)) = run {
                            note(s, count);
                        }
                        run = Some((stripe, 1));
                    }
                }
            }
            if let Some((s, count)) = run {
                note(s, count);
            }
        }
    }
    ((len, print), profile)
}

/// A set with its size, fingerprint and profile, taken once however many ledgers it is
/// compared with and kept in (a result's cells meet the project's ledger and the result's own).
#[derive(Debug, Clone, Copy)]
pub struct Described<'a> {
    set: &'a RoaringBitmap,
    key: (u64, u64),
    profile: Profile,
}

impl<'a> Described<'a> {
    pub fn new(set: &'a RoaringBitmap) -> Self {
        let (key, profile) = describe(set);
        Self { set, key, profile }
    }

    pub fn is_empty(&self) -> bool {
        self.key.0 == 0
    }

    pub fn to_kept(&self) -> Kept {
        let (len, print) = self.key;
        Kept {
            len,
            print,
            profile: self.profile,
            set: self.set.clone(),
        }
    }
}

impl Kept {
    pub fn new(set: RoaringBitmap) -> Self {
        let ((len, print), profile) = describe(&set);
        Self {
            len,
            print,
            profile,
            set,
        }
    }

    pub fn set(&self) -> &RoaringBitmap {
        &self.set
    }

    pub fn described(&self) -> Described<'_> {
        Described {
            set: &self.set,
            key: self.key(),
            profile: self.profile,
        }
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
        self.holds(describe(set).0, set)
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Keeps `set`, once: a set released again is compared once. Whether it is new (the same
    /// set released before gives nothing away, and need not be recorded again).
    pub fn add(&mut self, set: &Described<'_>) -> bool {
        if self.holds(set.key, set.set) {
            return false;
        }
        let at = self.sets.partition_point(|s| s.key() < set.key);
        self.sets.insert(at, set.to_kept());
        true
    }

    /// Whether some kept set differs from `set` by at least one and fewer than `threshold`
    /// persons (the same set again gives nothing away). Only sets of nearly the same size are
    /// looked at, and only those whose profiles do not tell them apart are compared member by
    /// member.
    pub fn differs_by_fewer(&self, set: &Described<'_>, threshold: u64) -> bool {
        let n = set.key.0;
        let from = self.sets.partition_point(|s| s.len + threshold <= n);
        self.sets[from..]
            .iter()
            .take_while(|s| s.len < n + threshold)
            .any(|s| {
                if fewest_differing(&set.profile, &s.profile) >= threshold {
                    return false;
                }
                let d = s.set.symmetric_difference_len(set.set);
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
        assert!(
            ledger.differs_by_fewer(&Described::new(&set(0..99)), 10),
            "all minus one"
        );
        assert!(
            ledger.differs_by_fewer(&Described::new(&set(0..105)), 10),
            "five added"
        );
        assert!(
            !ledger.differs_by_fewer(&Described::new(&set(0..100)), 10),
            "the same cell again"
        );
        assert!(!ledger.differs_by_fewer(&Described::new(&set(0..50)), 10));
        assert!(
            !ledger.differs_by_fewer(&Described::new(&set(200..299)), 10),
            "same size, other persons"
        );
        assert!(ledger.differs_by_fewer(&Described::new(&set(1000..4991)), 10));
        let mut again = ledger;
        assert!(!again.add(&Described::new(&set(500..520))));
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
        assert!(ledger.add(&Described::new(&set(3..13))));
        assert!(!ledger.add(&Described::new(&set(3..13))), "kept once");
        assert_eq!(ledger.len(), 501);
        let mut one_swapped = set(70..79);
        one_swapped.insert(1_000_000);
        assert!(ledger.differs_by_fewer(&Described::new(&one_swapped), 10));
    }

    /// Profiles only rule out sets that are not near: over many sets and their perturbations,
    /// the ledger finds exactly the near ones comparing every pair member by member finds.
    #[test]
    fn profiles_never_hide_a_near_set() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut random_set = |size: u64, spread: u64| -> RoaringBitmap {
            let mut s = RoaringBitmap::new();
            while s.len() < size {
                s.insert((next() % spread) as u32);
            }
            s
        };
        let kept: Vec<RoaringBitmap> = (0..200)
            .map(|i| random_set(20 + i % 40, if i % 2 == 0 { 2_000 } else { 1 << 20 }))
            .collect();
        let ledger = Ledger::new(kept.clone());
        let mut probes = Vec::new();
        for (i, k) in kept.iter().enumerate() {
            let mut near = k.clone();
            for (j, member) in k.iter().take(i % 12).enumerate() {
                if j % 2 == 0 {
                    near.remove(member);
                } else {
                    near.insert(3_000_000 + (i * 16 + j) as u32);
                }
            }
            probes.push(near);
        }
        probes.extend((0..200).map(|i| random_set(20 + i % 40, 2_000)));
        let mut found = 0;
        for p in &probes {
            let brute = kept.iter().any(|k| {
                let d = k.symmetric_difference_len(p);
                d > 0 && d < 10
            });
            assert_eq!(
                ledger.differs_by_fewer(&Described::new(p), 10),
                brute,
                "{p:?}"
            );
            found += usize::from(brute);
        }
        assert!(found > 100, "the probes include near sets: {found}");
    }
}

/// Where each project's released person sets are kept between checks and across processes
/// (the platform database). Defined here, implemented by governance, so that differencing
/// depends on what a store of releases does, not on how it is kept.
#[async_trait::async_trait]
pub trait ReleasedSets: Send + Sync {
    /// The sets the project released after row `after` (0: all), with their row ids, in order.
    async fn released_since(
        &self,
        project: &str,
        after: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, LedgerStoreError>;

    /// Keeps one release's sets, all or none. Returns the last row now kept when no other
    /// release of the project came in after `seen` (the caller's ledger is then current).
    async fn record_released(
        &self,
        project: &str,
        query_id: &str,
        sets: &[Vec<u8>],
        seen: i64,
    ) -> Result<Option<i64>, LedgerStoreError>;
}

/// A store of releases failed; its cause is kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("released person sets")]
pub struct LedgerStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);
