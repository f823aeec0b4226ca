//! Accumulators of members per group: a set of persons, facilities up to a cap, a group's one
//! person, and the readers of a column's members.

use super::*;

/// Each group's first member (None: none yet); with `one_only`, a second member fails the
/// query (a group's person).
#[derive(Debug, Default)]
pub(crate) struct FirstGroups {
    pub(crate) firsts: Vec<Option<u32>>,
    pub(crate) one_only: bool,
}

impl FirstGroups {
    pub(crate) fn person() -> Self {
        Self {
            firsts: Vec::new(),
            one_only: true,
        }
    }
}

impl MemberGroups for FirstGroups {
    fn grow(&mut self, total: usize) {
        grow(&mut self.firsts, total);
    }

    fn add(
        &mut self,
        values: &ArrayRef,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<()> {
        // `SingleGroup` opens its group with an empty state of no particular type.
        if group_indices.is_empty() {
            return Ok(());
        }
        let members = values.as_primitive::<UInt32Type>();
        let nulls = members.logical_nulls();
        let members = members.values();
        let firsts = &mut self.firsts;
        // Noted, not returned, on the way: an early return a row costs a branch a row.
        let mut second = false;
        for_each_chosen(group_indices, opt_filter, nulls.as_ref(), |row, g| {
            let member = members[row];
            match firsts[g] {
                Some(first) => second |= first != member,
                None => firsts[g] = Some(member),
            }
            Ok(())
        })?;
        if second && self.one_only {
            return exec_err!(
                "two persons share a pseudonym in this project, so its results cannot be checked"
            );
        }
        Ok(())
    }

    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let firsts = emit_to.take_needed(&mut self.firsts);
        Arc::new(arrow::array::UInt32Array::from(firsts))
    }

    fn empty(&self) -> Self {
        Self {
            firsts: Vec::new(),
            one_only: self.one_only,
        }
    }

    fn size(&self) -> usize {
        self.firsts.capacity() * std::mem::size_of::<Option<u32>>()
    }
}

/// A reader of a column's members, dispatched once per batch: person indexes and marks as they
/// are, facility codes by their marks (as ingest stores them beside the codes, so a store from
/// before the marks counts its facilities alike).
pub(crate) fn member_reader(values: &ArrayRef) -> Result<Box<dyn Fn(usize) -> u32 + '_>> {
    Ok(match values.data_type() {
        DataType::UInt32 => {
            let a = values.as_primitive::<UInt32Type>();
            Box::new(move |row| a.value(row))
        }
        DataType::Utf8 => {
            let a = values.as_string::<i32>();
            Box::new(move |row| facility_mark(a.value(row)))
        }
        DataType::LargeUtf8 => {
            let a = values.as_string::<i64>();
            Box::new(move |row| facility_mark(a.value(row)))
        }
        DataType::Utf8View => {
            let a = values.as_string_view();
            Box::new(move |row| facility_mark(a.value(row)))
        }
        other => return exec_err!("a member of a set cannot be {other}"),
    })
}

/// Calls `f(group, member)` for each row [`for_each_chosen`] takes: person indexes and facility
/// marks (UInt32, the common case) read directly, other members through [`member_reader`].
pub(crate) fn each_member(
    values: &ArrayRef,
    group_indices: &[usize],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, u32),
) -> Result<()> {
    let nulls = values.logical_nulls();
    if let Some(members) = values.as_primitive_opt::<UInt32Type>() {
        let members = members.values();
        for_each_chosen(group_indices, filter, nulls.as_ref(), |row, g| {
            f(g, members[row]);
            Ok(())
        })
    } else {
        let member = member_reader(values)?;
        for_each_chosen(group_indices, filter, nulls.as_ref(), |row, g| {
            f(g, member(row));
            Ok(())
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct SetGroups {
    pub(crate) groups: Vec<Group>,
    /// Values added so far: a cheap bound on the sets' size (a roaring set of n values takes
    /// at most about 2n bytes plus its containers; a pending value 4).
    pub(crate) added: usize,
}

impl MemberGroups for SetGroups {
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let groups = emit_to.take_needed(&mut self.groups);
        let mut out = BinaryBuilder::with_capacity(groups.len(), 0);
        for group in groups {
            out.append_value(group.encode());
        }
        self.added = self.groups.iter().map(Group::held).sum();
        Arc::new(out.finish())
    }

    /// Adds the rows of `values` (members, or the sets of an inner aggregate) to their groups.
    fn add(
        &mut self,
        values: &ArrayRef,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<()> {
        let groups = &mut self.groups;
        if let (Some(members), None) = (values.as_primitive_opt::<UInt32Type>(), opt_filter)
            && members.null_count() == 0
        {
            // Every row counts (the common batch): a loop of its own, into which `push` is
            // inlined (through `each_member`'s closures it is a call a row, which profiles of
            // "diagnoses" put at a fifth more), counted once a batch.
            for (&g, &member) in group_indices.iter().zip(members.values()) {
                groups[g].push(member);
            }
            self.added += group_indices.len();
            return Ok(());
        }
        // Counted in a local, once a batch: a count kept in `self` is written back a row.
        let mut added = 0;
        if values.data_type() == &DataType::Binary {
            let sets = values.as_binary::<i32>();
            let nulls = values.logical_nulls();
            for_each_chosen(group_indices, opt_filter, nulls.as_ref(), |row, g| {
                let bytes = sets.value(row);
                added += bytes.len() / 4;
                groups[g].add_set(bytes)
            })?;
        } else {
            each_member(values, group_indices, opt_filter, |g, m| {
                groups[g].push(m);
                added += 1;
            })?;
        }
        self.added += added;
        Ok(())
    }

    fn grow(&mut self, total: usize) {
        grow(&mut self.groups, total);
    }

    fn empty(&self) -> Self {
        Self::default()
    }

    /// A row's set is a few members: handed on in the tagged form, not as a bitmap.
    fn emit_rows(self) -> ArrayRef {
        let mut out = BinaryBuilder::with_capacity(self.groups.len(), self.groups.len() * 5);
        let mut scratch = Vec::new();
        for group in self.groups {
            append_tagged(&mut out, &mut scratch, group.finish());
        }
        Arc::new(out.finish())
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Group>() + 4 * self.added
    }
}

/// Accumulators of members per group (a set of persons, facilities up to a cap, or a group's
/// one person): how they grow, take rows and hand on what they hold; [`Members`] makes a
/// DataFusion groups accumulator of any of them.
pub(crate) trait MemberGroups: Send + Sync + Sized + 'static {
    fn grow(&mut self, total: usize);
    fn add(
        &mut self,
        values: &ArrayRef,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<()>;
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef;
    /// One without groups, taking the same kind of members.
    fn empty(&self) -> Self;
    /// Every group's set, when each group is one row (as `emit` gives it, but where a row's
    /// own form is cheaper).
    fn emit_rows(mut self) -> ArrayRef {
        self.emit(EmitTo::All)
    }
    fn size(&self) -> usize;
}

/// The groups accumulator over a [`MemberGroups`].
#[derive(Debug)]
pub(crate) struct Members<T>(pub(crate) T);

impl<T: MemberGroups> GroupsAccumulator for Members<T> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.grow(total_num_groups);
        self.0.add(&values[0], group_indices, opt_filter)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.0.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.0.emit(emit_to)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.grow(total_num_groups);
        self.0.add(&values[0], group_indices, None)
    }

    /// Each row a group of its own.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values[0].len();
        let mut one = self.0.empty();
        one.grow(rows);
        let indices: Vec<usize> = (0..rows).collect();
        one.add(&values[0], &indices, opt_filter)?;
        Ok(vec![one.emit_rows()])
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

/// Records of no identified person (no ID5) still belong to someone: each contributes as a
/// person of its own, under a key with this bit set (person indexes stay below it). Keys are
/// numbered per accumulator, so two such records may share one after a merge; that only makes
/// a contribution larger, and the rules stricter. They are never counted as persons.
pub(crate) const ANONYMOUS: u32 = 0x8000_0000;

/// Per group, up to `cap` distinct members (unsorted; linear search is fastest at the small
/// caps policies use).
#[derive(Debug)]
pub(crate) struct FirstMembersGroups {
    pub(crate) cap: usize,
    pub(crate) groups: Vec<FirstMembers>,
    /// Groups below the cap: once there are none, a batch of rows is skipped without being
    /// read (most cells of a large aggregate fill up within their first rows).
    pub(crate) open: usize,
    /// Members kept outside the groups' inline space (counted as they come: `size` is asked
    /// for every batch, and a million groups must not be walked each time).
    pub(crate) spilled: usize,
}

/// A group's members, inline up to the usual caps (no allocation for each of a million groups).
pub(crate) type FirstMembers = smallvec::SmallVec<[u32; 4]>;

impl FirstMembersGroups {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            groups: Vec::new(),
            open: 0,
            spilled: 0,
        }
    }
}

/// The counts [`FirstMembersGroups`] keeps while it takes a batch's members.
pub(crate) struct FirstMembersCounts<'a> {
    pub(crate) cap: usize,
    pub(crate) spilled: &'a mut usize,
    pub(crate) open: &'a mut usize,
}

impl FirstMembersCounts<'_> {
    #[inline(always)]
    pub(crate) fn insert(&mut self, members: &mut FirstMembers, m: u32) {
        if members.len() < self.cap && !members.contains(&m) {
            members.push(m);
            if members.spilled() {
                *self.spilled += 1;
            }
            if members.len() == self.cap {
                *self.open -= 1;
            }
        }
    }
}

impl MemberGroups for FirstMembersGroups {
    fn grow(&mut self, total: usize) {
        self.open += total.saturating_sub(self.groups.len());
        grow(&mut self.groups, total);
    }

    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let groups = emit_to.take_needed(&mut self.groups);
        self.spilled = self
            .groups
            .iter()
            .filter(|g| g.spilled())
            .map(|g| g.len())
            .sum();
        self.open = self.groups.iter().filter(|g| g.len() < self.cap).count();
        let mut out = BinaryBuilder::with_capacity(groups.len(), groups.len() * 5);
        let mut scratch = Vec::new();
        for members in groups {
            append_tagged(&mut out, &mut scratch, members);
        }
        Arc::new(out.finish())
    }

    /// Adds the members of `values` to the groups of the rows, skipping rows of full groups
    /// before reading them.
    fn add(
        &mut self,
        values: &ArrayRef,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<()> {
        if self.open == 0 {
            return Ok(());
        }
        let groups = &mut self.groups;
        let mut counts = FirstMembersCounts {
            cap: self.cap,
            spilled: &mut self.spilled,
            open: &mut self.open,
        };
        if values.data_type() == &DataType::Binary {
            let sets = values.as_binary::<i32>();
            let nulls = values.logical_nulls();
            for_each_chosen(group_indices, opt_filter, nulls.as_ref(), |row, g| {
                // A full group skips its rows before they are read.
                if groups[g].len() >= counts.cap {
                    return Ok(());
                }
                let bytes = sets.value(row);
                match tagged_members(bytes) {
                    Some(members) => members.for_each(|m| counts.insert(&mut groups[g], m)),
                    None => decode_set(bytes)?
                        .iter()
                        .for_each(|m| counts.insert(&mut groups[g], m)),
                }
                Ok(())
            })?;
        } else {
            each_member(values, group_indices, opt_filter, |g, m| {
                counts.insert(&mut groups[g], m);
            })?;
        }
        Ok(())
    }

    fn empty(&self) -> Self {
        Self::new(self.cap)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<FirstMembers>() + 8 * self.spilled
    }
}
