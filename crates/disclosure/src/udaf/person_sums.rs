//! Per group, each person's sums of |value| (`niji_contributions`).

use super::*;

/// Per group, each person's sums of |value|, one for each of the aggregate's values: one
/// lookup a row, however many magnitudes share the pass.
#[derive(Debug)]
pub(crate) struct ContributionGroups {
    /// Values per row (magnitudes sharing this aggregate).
    pub(crate) k: usize,
    pub(crate) groups: Vec<PersonSums>,
    pub(crate) entries: usize,
    pub(crate) anonymous: u32,
}

/// One group's per-person sums. While persons arrive in a few ascending runs (a store clustered
/// by fiscal year and person hands each cell its persons so), they are a list: a row costs a
/// compare and an add or a push, where a map costs a hash and, among millions of (cell, person)
/// entries, a cache miss. A run beyond [`MAX_RUNS`] moves them into a map.
#[derive(Debug, Default)]
pub(crate) struct PersonSums {
    /// Persons in ascending runs (one person may be in several), and their k sums each in the
    /// same order.
    pub(crate) persons: Vec<u32>,
    pub(crate) sums: Vec<f64>,
    /// Runs begun after the first.
    pub(crate) runs: u8,
    pub(crate) map: Option<HashMap<u32, Sums>>,
}

/// A person's k sums in the map, inline for up to two values.
pub(crate) type Sums = smallvec::SmallVec<[f64; 2]>;

/// A state entry: a person and k sums, little-endian.
pub(crate) fn state_entry(entry: &[u8]) -> (u32, impl Fn(usize) -> f64 + '_) {
    let (p, sums) = entry.split_at(4);
    let person = u32::from_le_bytes(p.try_into().unwrap_or_default());
    (person, move |j: usize| {
        f64::from_le_bytes(sums[8 * j..][..8].try_into().unwrap_or_default())
    })
}

impl PersonSums {
    pub(crate) fn len(&self) -> usize {
        self.map.as_ref().map_or(self.persons.len(), HashMap::len)
    }

    /// Adds `value(j)` to `person`'s k sums; whether that took a new entry (a person new to the
    /// group, or to its run).
    #[inline]
    pub(crate) fn add(&mut self, k: usize, person: u32, value: impl Fn(usize) -> f64) -> bool {
        if self.map.is_none() {
            match self.persons.last() {
                Some(&last) if last == person => {
                    let at = self.sums.len() - k;
                    for (j, sum) in self.sums[at..].iter_mut().enumerate() {
                        *sum += value(j).abs();
                    }
                    return false;
                }
                Some(&last) if last > person && usize::from(self.runs) >= MAX_RUNS => {}
                last => {
                    self.runs += u8::from(last.is_some_and(|&l| l > person));
                    self.persons.push(person);
                    self.sums.extend((0..k).map(|j| value(j).abs()));
                    return true;
                }
            }
        }
        let map = match self.map.take() {
            Some(map) => self.map.insert(map),
            None => {
                let mut map: HashMap<u32, Sums> = HashMap::default();
                // A person may be in several runs.
                for (person, sums) in self.persons.drain(..).zip(self.sums.chunks_exact(k)) {
                    let into = map
                        .entry(person)
                        .or_insert_with(|| smallvec::smallvec![0.0; k]);
                    into.iter_mut().zip(sums).for_each(|(a, b)| *a += b);
                }
                self.sums = Vec::new();
                self.map.insert(map)
            }
        };
        let before = map.len();
        let sums = map
            .entry(person)
            .or_insert_with(|| smallvec::smallvec![0.0; k]);
        for (j, sum) in sums.iter_mut().enumerate() {
            *sum += value(j).abs();
        }
        map.len() > before
    }

    /// Adds a state's entries; how many persons are new. A sorted state that interleaves with
    /// the group's sorted persons (the other partition's) is merged in one pass; others are
    /// added entry by entry.
    pub(crate) fn merge_state(&mut self, k: usize, state: &[u8]) -> usize {
        if self.map.is_none() && self.runs > 0 {
            let (persons, sums) = std::mem::take(self).into_sorted(k);
            (self.persons, self.sums) = (persons, sums);
        }
        let entries = state.chunks_exact(4 + 8 * k);
        let persons = || entries.clone().map(|e| state_entry(e).0);
        let interleaves = self.map.is_none()
            && persons()
                .next()
                .zip(self.persons.last())
                .is_some_and(|(first, &last)| first <= last)
            && entries.len() * 16 >= self.persons.len()
            && persons().is_sorted_by(|a, b| a < b);
        if !interleaves {
            return entries
                .filter(|e| {
                    let (person, value) = state_entry(e);
                    self.add(k, person, value)
                })
                .count();
        }
        let before = self.persons.len();
        let old_persons = std::mem::take(&mut self.persons);
        let old_sums = std::mem::take(&mut self.sums);
        let mut i = 0;
        for entry in entries {
            let (person, value) = state_entry(entry);
            while i < old_persons.len() && old_persons[i] < person {
                self.persons.push(old_persons[i]);
                self.sums.extend_from_slice(&old_sums[i * k..][..k]);
                i += 1;
            }
            let same = old_persons.get(i) == Some(&person);
            self.persons.push(person);
            for j in 0..k {
                let old = if same { old_sums[i * k + j] } else { 0.0 };
                self.sums.push(old + value(j).abs());
            }
            i += usize::from(same);
        }
        self.persons.extend_from_slice(&old_persons[i..]);
        self.sums.extend_from_slice(&old_sums[i * k..]);
        self.persons.len() - before
    }

    /// The persons in ascending order, with their k sums each.
    pub(crate) fn into_sorted(self, k: usize) -> (Vec<u32>, Vec<f64>) {
        let Some(map) = self.map else {
            if self.runs == 0 {
                return (self.persons, self.sums);
            }
            // A stable sort merges the runs; a person in several is then summed once.
            let mut order: Vec<usize> = (0..self.persons.len()).collect();
            order.sort_by_key(|&i| self.persons[i]);
            let mut persons: Vec<u32> = Vec::with_capacity(order.len());
            let mut sums: Vec<f64> = Vec::with_capacity(order.len() * k);
            for i in order {
                let from = &self.sums[i * k..][..k];
                if persons.last() == Some(&self.persons[i]) {
                    let at = sums.len() - k;
                    sums[at..].iter_mut().zip(from).for_each(|(a, b)| *a += b);
                } else {
                    persons.push(self.persons[i]);
                    sums.extend_from_slice(from);
                }
            }
            return (persons, sums);
        };
        let mut entries: Vec<(u32, Sums)> = map.into_iter().collect();
        entries.sort_unstable_by_key(|(p, _)| *p);
        let mut sums = Vec::with_capacity(entries.len() * k);
        let persons = entries
            .into_iter()
            .map(|(p, s)| {
                sums.extend_from_slice(&s);
                p
            })
            .collect();
        (persons, sums)
    }
}

/// The [`TOP_CONTRIBUTIONS`] largest of `values`, largest first.
pub(crate) fn largest(values: impl Iterator<Item = f64>) -> Largest {
    let mut top = Largest::new();
    values.for_each(|v| keep_largest(&mut top, v));
    top
}

impl ContributionGroups {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            groups: Vec::new(),
            entries: 0,
            anonymous: 0,
        }
    }

    /// Per group: each person and their k sums, as little-endian bytes, persons ascending.
    pub(crate) fn state_array(&self, groups: Vec<PersonSums>) -> ArrayRef {
        let k = self.k;
        let mut out = BinaryBuilder::with_capacity(groups.len(), 0);
        for g in groups {
            let (persons, sums) = g.into_sorted(k);
            let mut bytes = Vec::with_capacity(persons.len() * (4 + 8 * k));
            for (person, sums) in persons.iter().zip(sums.chunks_exact(k)) {
                bytes.extend_from_slice(&person.to_le_bytes());
                for v in sums {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            out.append_value(bytes);
        }
        Arc::new(out.finish())
    }

    pub(crate) fn take(&mut self, emit_to: EmitTo) -> Vec<PersonSums> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.entries = self.groups.iter().map(PersonSums::len).sum();
        taken
    }
}

impl Contributing for ContributionGroups {
    /// A row without any value adds nobody.
    #[inline]
    fn take(
        &mut self,
        group: usize,
        person: Option<u32>,
        valued: bool,
        value: impl Fn(usize) -> f64,
    ) {
        if !valued {
            return;
        }
        let person = person.unwrap_or_else(|| {
            self.anonymous = self.anonymous.wrapping_add(1);
            ANONYMOUS | (self.anonymous & !ANONYMOUS)
        });
        let new = self.groups[group].add(self.k, person, value);
        self.entries += usize::from(new);
    }

    fn empty(&self) -> Self {
        Self::new(self.k)
    }

    fn grow(&mut self, total: usize) {
        grow(&mut self.groups, total);
    }

    fn merge(&mut self, group: usize, state: &[u8]) -> Result<()> {
        self.entries += self.groups[group].merge_state(self.k, state);
        Ok(())
    }

    /// Per group, one section per value: the total, the largest contributions and the persons
    /// contributing anything (see [`Contributions::decode`]).
    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let k = self.k;
        let groups = self.take(emit_to);
        let mut out = BinaryBuilder::with_capacity(groups.len(), 0);
        for g in groups {
            // Ascending persons: each section's contributors are a sorted run, as a bitmap
            // takes them.
            let (persons, sums) = g.into_sorted(k);
            let mut bytes = vec![CONTRIBUTIONS_FORM];
            for j in 0..k {
                let section = || sums.iter().skip(j).step_by(k).copied();
                let total: f64 = section().sum();
                let contributors = RoaringBitmap::from_sorted_iter(
                    persons
                        .iter()
                        .zip(section())
                        .filter(|(p, v)| *p & ANONYMOUS == 0 && *v != 0.0)
                        .map(|(p, _)| *p),
                )
                .unwrap_or_default();
                let top = largest(section().filter(|v| *v != 0.0));
                Contributions::encode_section(Form::Exact, total, &top, &contributors, &mut bytes);
            }
            out.append_value(bytes);
        }
        Ok(Arc::new(out.finish()))
    }

    fn emit_state(&mut self, emit_to: EmitTo) -> ArrayRef {
        let groups = self.take(emit_to);
        self.state_array(groups)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<PersonSums>()
            + self.entries * (8 + std::mem::size_of::<Sums>())
    }
}
