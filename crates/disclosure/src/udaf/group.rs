//! One group's set: ascending runs appended a compare a row, merged once when handed on.

use super::*;

/// One group's set. A store clustered by fiscal year and person hands a cell its persons in a
/// few ascending runs: each member is then appended to its run (or found equal to the last), a
/// compare a row, and the runs are merged once, when the set is handed on, and written in
/// roaring's portable form directly ([`serialize_sorted`]: a roaring bitmap's `push` or
/// `append` looks for its last container a member, which costs more than the rest of a row's
/// check). Beyond [`MAX_RUNS`], members are buffered and added sorted, many at a time (a
/// roaring bitmap takes sorted runs cheaply and single random inserts into its sparse
/// containers dearly). Once the set is dense, its containers are bitmaps, where a member costs
/// one bit: it then takes members directly.
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(crate) set: RoaringBitmap,
    /// Ascending runs closed, and the open one.
    pub(crate) runs: Vec<Vec<u32>>,
    pub(crate) newest: Run,
    pub(crate) pending: Vec<u32>,
    pub(crate) dense: bool,
}

/// Ascending runs a group takes as runs before it takes members in any order (a store
/// clustered by fiscal year gives a cell one run per year a partition reads).
pub(crate) const MAX_RUNS: usize = 8;

/// Members buffered per group before they are added to its bitmap.
pub(crate) const PENDING: usize = 4096;
/// Members of an open run kept as a list (four bytes each) before they go into the bitmap (a
/// bit or two bytes each): a large cell's memory stays that of its bitmap.
pub(crate) const RUN_LIST: usize = 1 << 16;
/// Incoming sets up to this size are added member by member.
pub(crate) const SMALL_SET: u64 = 64;

/// An open ascending run. A member is written past its end whether or not it repeats the last
/// (a person's rows in a cell come together as often as not, and a branch on which would be
/// mispredicted that often), and the end moves on only for a new one: its slots always reach
/// beyond its end. The last member is kept beside the slots too, so that a row compares with
/// it without first reading where the slots are.
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub(crate) slots: Vec<u32>,
    pub(crate) len: usize,
    /// `slots[len - 1]` while `len > 0`.
    pub(crate) last_member: u32,
}

impl Run {
    pub(crate) fn last(&self) -> Option<u32> {
        (self.len > 0).then_some(self.last_member)
    }

    pub(crate) fn members(&self) -> &[u32] {
        &self.slots[..self.len]
    }

    /// Appends `member` unless it repeats the last; false (and nothing added) if it is below.
    #[inline(always)]
    pub(crate) fn extend(&mut self, member: u32) -> bool {
        let new = match self.last() {
            Some(last) if member < last => return false,
            Some(last) => member > last,
            None => true,
        };
        if self.len + 1 >= self.slots.len() {
            self.grow();
        }
        self.slots[self.len] = member;
        self.len += usize::from(new);
        self.last_member = member;
        true
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn grow(&mut self) {
        self.slots.resize((self.slots.len() * 2).max(8), 0);
    }

    /// Its members, leaving it empty.
    pub(crate) fn take(&mut self) -> Vec<u32> {
        let mut members = std::mem::take(&mut self.slots);
        members.truncate(std::mem::take(&mut self.len));
        members
    }

    /// Keeps only its last member.
    pub(crate) fn keep_last(&mut self) {
        if let Some(last) = self.last() {
            self.slots[0] = last;
            self.len = 1;
        }
    }
}

impl Group {
    #[inline(always)]
    pub(crate) fn push(&mut self, member: u32) {
        if self.newest.extend(member) {
            if self.newest.len >= RUN_LIST {
                self.settle_newest();
            }
            return;
        }
        self.push_below(member);
    }

    /// A member below the open run's last: a run of its own while there are few, else into
    /// the bitmap (directly once it is dense, else buffered and added sorted).
    #[cold]
    #[inline(never)]
    pub(crate) fn push_below(&mut self, member: u32) {
        if self.runs.len() < MAX_RUNS {
            self.runs.push(self.newest.take());
            self.newest.extend(member);
            return;
        }
        if self.dense {
            self.set.insert(member);
            return;
        }
        self.pending.push(member);
        if self.pending.len() >= PENDING {
            self.flush();
        }
    }

    /// The open run's members into the bitmap, but for its last, above which the run goes on.
    #[cold]
    #[inline(never)]
    pub(crate) fn settle_newest(&mut self) {
        self.set |= bitmap_of(self.newest.members());
        self.newest.keep_last();
    }

    /// The runs' members, ascending and each once.
    pub(crate) fn merged_runs(&mut self) -> Vec<u32> {
        let mut runs = std::mem::take(&mut self.runs);
        runs.push(self.newest.take());
        runs.retain(|r| !r.is_empty());
        while runs.len() > 1 {
            let mut pairs = Vec::with_capacity(runs.len().div_ceil(2));
            let mut it = runs.into_iter();
            while let Some(a) = it.next() {
                pairs.push(match it.next() {
                    Some(b) => merge_ascending(&a, &b),
                    None => a,
                });
            }
            runs = pairs;
        }
        runs.pop().unwrap_or_default()
    }

    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.pending.sort_unstable();
        self.pending.dedup();
        // Sorted and without duplicates: accepted as is.
        if let Ok(run) = RoaringBitmap::from_sorted_iter(self.pending.drain(..)) {
            self.set |= run;
        }
        // A roaring container turns into a bitmap at 4,096 of its 65,536 values.
        if let (Some(min), Some(max)) = (self.set.min(), self.set.max()) {
            self.dense = self.set.len() * 16 > u64::from(max - min) + 1;
        }
        if self.dense {
            self.pending = Vec::new();
        }
    }

    pub(crate) fn union(&mut self, other: RoaringBitmap) {
        if other.len() <= SMALL_SET {
            for member in &other {
                self.push(member);
            }
        } else {
            self.flush();
            self.set |= other;
        }
    }

    pub(crate) fn finish(mut self) -> RoaringBitmap {
        self.flush();
        let runs = self.merged_runs();
        self.set |= bitmap_of(&runs);
        self.set
    }

    /// The set serialized as [`encode_set`] would, written directly from the runs where they
    /// hold every member.
    pub(crate) fn encode(mut self) -> Vec<u8> {
        self.flush();
        if self.set.is_empty() {
            return serialize_sorted(&self.merged_runs());
        }
        encode_set(&self.finish())
    }

    /// Members held, some perhaps twice (in the set and still pending): a bound on its size.
    pub(crate) fn held(&self) -> usize {
        self.set.len() as usize
            + self.runs.iter().map(Vec::len).sum::<usize>()
            + self.newest.len
            + self.pending.len()
    }

    /// Adds the members of a set (an inner aggregate's).
    pub(crate) fn add_set(&mut self, bytes: &[u8]) -> Result<()> {
        match tagged_members(bytes) {
            Some(members) => members.for_each(|m| self.push(m)),
            None => self.union(decode_set(bytes)?),
        }
        Ok(())
    }
}

pub(crate) fn selected(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// Calls `f(row, group)` for the rows the filter selects and that have a value, stopping at an
/// error; `nulls` taken once per batch. A batch with neither filter nor nulls (the common one)
/// is taken without a check a row.
#[inline(always)]
pub(crate) fn for_each_chosen(
    group_indices: &[usize],
    filter: Option<&BooleanArray>,
    nulls: Option<&arrow::buffer::NullBuffer>,
    mut f: impl FnMut(usize, usize) -> Result<()>,
) -> Result<()> {
    if filter.is_none() && nulls.is_none() {
        for (row, &g) in group_indices.iter().enumerate() {
            f(row, g)?;
        }
        return Ok(());
    }
    for (row, &g) in group_indices.iter().enumerate() {
        if selected(filter, row) && nulls.is_none_or(|n| n.is_valid(row)) {
            f(row, g)?;
        }
    }
    Ok(())
}

pub(crate) fn grow<T: Default>(v: &mut Vec<T>, total: usize) {
    if v.len() < total {
        v.resize_with(total, T::default);
    }
}
