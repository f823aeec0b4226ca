//! The aggregates niji adds to a researcher's plan: the set of persons (or facilities) behind
//! each group, as a roaring bitmap, and each person's contribution to a magnitude.
//!
//! `niji_set(x)` takes person indexes (UInt32), facility marks (UInt32) or codes (strings,
//! marked as ingest marks them: a collision can only make a count smaller, so a rule errs
//! towards suppressing) or the sets
//! of an inner aggregate (Binary), and returns the serialized union. It is computed in the same
//! pass as the researcher's own aggregates.
//!
//! `niji_contributions(person, value)` sums |value| per person and returns the total and the
//! largest contributions, for the dominance and p-percent rules.

type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt32Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator,
    ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use niji_catalog::facility_mark;
use roaring::RoaringBitmap;

pub const SET_FUNCTION: &str = "niji_set";
pub const CONTRIBUTIONS_FUNCTION: &str = "niji_contributions";
pub const FEW_FUNCTION: &str = "niji_few";
/// Largest contributions kept per cell (the dominance rule's n is at most this).
pub const TOP_CONTRIBUTIONS: usize = 5;

pub fn set_udaf() -> AggregateUDF {
    niji_udaf(Kind::Set, Signature::any(1, Volatility::Immutable))
}

/// At most `cap` distinct members per group (facilities: the rule only asks whether a cell
/// rests on fewer than its minimum). A group that has them all skips its rows unread, so a
/// large cell costs nearly nothing, where a full set would hash and keep every facility.
pub fn few_udaf(cap: usize) -> AggregateUDF {
    niji_udaf(
        Kind::Few(cap.clamp(1, MAX_FEW)),
        Signature::any(1, Volatility::Immutable),
    )
}

/// The largest cap of [`few_udaf`] (a policy's facility minimum).
pub const MAX_FEW: usize = 1_000;

pub fn contributions_udaf() -> AggregateUDF {
    niji_udaf(
        Kind::Contributions,
        Signature::variadic_any(Volatility::Immutable),
    )
}

fn niji_udaf(kind: Kind, signature: Signature) -> AggregateUDF {
    AggregateUDF::new_from_impl(NijiUdaf {
        kind,
        signature,
        ceilings: Vec::new(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Set,
    Few(usize),
    Contributions,
    Person,
    AFacility,
    Cell,
    Ceiled,
}

/// niji's aggregates, each computed by a groups accumulator: a Binary result and a Binary
/// state, but for the one member of `niji_person` and `niji_a_facility` (UInt32).
#[derive(Debug, PartialEq, Eq, Hash)]
struct NijiUdaf {
    kind: Kind,
    signature: Signature,
    /// `niji_ceiled`'s ceilings, one per value (as bits, which compare and hash as the planner
    /// needs); empty for the others.
    ceilings: Vec<Vec<u64>>,
}

impl NijiUdaf {
    /// The accumulator; `values` is how many values (after the person) contributions take.
    fn groups(&self, values: usize) -> Box<dyn GroupsAccumulator + Sync> {
        match self.kind {
            Kind::Set => Box::new(Members(SetGroups::default())),
            Kind::Few(cap) => Box::new(Members(FewGroups::new(cap))),
            Kind::Contributions => Box::new(ByPerson(ContributionGroups::new(values.max(1)))),
            Kind::Person => Box::new(Members(FirstGroups::person())),
            Kind::AFacility => Box::new(Members(FirstGroups::default())),
            Kind::Cell => Box::new(ByPerson(CellGroups::new(values.max(1)))),
            Kind::Ceiled => Box::new(ByPerson(CeiledGroups::new(
                self.ceilings
                    .iter()
                    .map(|c| c.iter().map(|b| f64::from_bits(*b)).collect())
                    .collect(),
            ))),
        }
    }

    /// The type of the state, and of the result but for a cell's (a struct).
    fn carries(&self) -> DataType {
        match self.kind {
            Kind::Person | Kind::AFacility => DataType::UInt32,
            _ => DataType::Binary,
        }
    }
}

impl AggregateUDFImpl for NijiUdaf {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Set => SET_FUNCTION,
            Kind::Few(_) => FEW_FUNCTION,
            Kind::Contributions => CONTRIBUTIONS_FUNCTION,
            Kind::Person => PERSON_FUNCTION,
            Kind::AFacility => A_FACILITY_FUNCTION,
            Kind::Cell => CELL_FUNCTION,
            Kind::Ceiled => CEILED_FUNCTION,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let contributions_take = |args: &[DataType]| {
            args.first() == Some(&DataType::UInt32)
                && args.len() >= 2
                && args[1..].iter().all(|t| t == &DataType::Float64)
        };
        match (self.kind, args.first()) {
            (Kind::Person | Kind::AFacility, Some(DataType::UInt32)) => Ok(DataType::UInt32),
            (Kind::Contributions, _) if contributions_take(args) => Ok(DataType::Binary),
            (Kind::Cell, _) if contributions_take(args) => Ok(DataType::Struct(cell_fields())),
            // A ceiling for each value.
            (Kind::Ceiled, _)
                if contributions_take(args) && args.len() == self.ceilings.len() + 1 =>
            {
                Ok(DataType::Struct(cell_fields()))
            }
            (
                Kind::Set | Kind::Few(_),
                Some(
                    DataType::UInt32
                    | DataType::Binary
                    | DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View,
                ),
            ) => Ok(DataType::Binary),
            (_, other) => exec_err!("{} does not take {other:?}", self.name()),
        }
    }

    /// Only a group's one person or facility may be unknown (records without ID5 or facility).
    fn is_nullable(&self) -> bool {
        matches!(self.kind, Kind::Person | Kind::AFacility)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[state]", args.name),
            self.carries(),
            self.is_nullable(),
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup::new(
            self.groups(args.exprs.len().saturating_sub(1)),
        )?))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self.groups(args.exprs.len().saturating_sub(1)))
    }
}

pub const PERSON_FUNCTION: &str = "niji_person";

/// `niji_person(person)`: the person of a group of an aggregation grouped by the pseudonym,
/// whose every group is one person. It is carried as a value, not as a second group key, which
/// would turn DataFusion's grouping on one primitive column into a slower grouping on several.
/// A group with two persons (two pseudonyms colliding) fails the query rather than hide one.
pub fn person_udaf() -> AggregateUDF {
    niji_udaf(
        Kind::Person,
        Signature::exact(vec![DataType::UInt32], Volatility::Immutable),
    )
}

pub const A_FACILITY_FUNCTION: &str = "niji_a_facility";

/// `niji_a_facility(mark)`: one facility of each group (its first), for groups of one person
/// that an outer aggregation counts facilities over. The facilities an outer cell finds so are
/// some of its own, never more: enough to pass the rule, and where they fall short the exact
/// shadow counts them all. A person's few facilities would otherwise be searched a row.
pub fn a_facility_udaf() -> AggregateUDF {
    niji_udaf(
        Kind::AFacility,
        Signature::exact(vec![DataType::UInt32], Volatility::Immutable),
    )
}

/// Each group's first member (None: none yet); with `one_only`, a second member fails the
/// query (a group's person).
#[derive(Debug, Default)]
struct FirstGroups {
    firsts: Vec<Option<u32>>,
    one_only: bool,
}

impl FirstGroups {
    fn person() -> Self {
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
        // `OneGroup` opens its group with an empty state of no particular type.
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

/// A set as the aggregate returns it: a serialized roaring bitmap, or, tagged with a leading
/// byte 0, members as little-endian u32 (what one row makes, cheaply, when the partial
/// aggregation hands rows on without grouping them).
pub fn decode_set(bytes: &[u8]) -> Result<RoaringBitmap> {
    if bytes.is_empty() {
        return Ok(RoaringBitmap::new());
    }
    match tagged_members(bytes) {
        Some(members) => Ok(members.collect()),
        None => RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| datafusion::error::DataFusionError::Execution(format!("person set: {e}"))),
    }
}

/// The members of a set in the tagged form, without building a bitmap (None: a serialized
/// bitmap).
pub(crate) fn tagged_members(bytes: &[u8]) -> Option<impl Iterator<Item = u32> + '_> {
    match bytes.split_first() {
        Some((&MEMBERS_TAG, members)) => Some(
            members
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default())),
        ),
        _ => None,
    }
}

/// Appends members in the tagged form [`decode_set`] reads, as one value of `out`; `scratch`
/// is reused from value to value (a value a group, and groups may be a million).
pub(crate) fn append_tagged(
    out: &mut BinaryBuilder,
    scratch: &mut Vec<u8>,
    members: impl IntoIterator<Item = u32>,
) {
    scratch.clear();
    scratch.push(MEMBERS_TAG);
    for m in members {
        scratch.extend_from_slice(&m.to_le_bytes());
    }
    out.append_value(&scratch);
}

/// A reader of a column's members, dispatched once per batch: person indexes and marks as they
/// are, facility codes by their marks (as ingest stores them beside the codes, so a store from
/// before the marks counts its facilities alike).
fn member_reader(values: &ArrayRef) -> Result<Box<dyn Fn(usize) -> u32 + '_>> {
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
fn each_member(
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

/// A roaring bitmap's serialization starts with a cookie (12346 or 12347, little-endian), never
/// with a zero byte.
const MEMBERS_TAG: u8 = 0;

pub fn encode_set(set: &RoaringBitmap) -> Vec<u8> {
    let mut out = Vec::with_capacity(set.serialized_size());
    // Writing to a Vec cannot fail.
    let _ = set.serialize_into(&mut out);
    out
}

/// Ascending members, each once, in roaring's portable serialization (what [`encode_set`]
/// writes for the same set): a cookie and the container count, each container's key and
/// cardinality less one, their offsets, then each container, an array of its members' low
/// halves up to 4,096 members and a bitmap of 65,536 bits beyond.
fn serialize_sorted(members: &[u32]) -> Vec<u8> {
    const NO_RUN_CONTAINERS: u32 = 12346;
    const ARRAY_LIMIT: usize = 4096;
    let containers: Vec<&[u32]> = members.chunk_by(|a, b| a >> 16 == b >> 16).collect();
    let sizes: Vec<usize> = containers
        .iter()
        .map(|c| {
            if c.len() <= ARRAY_LIMIT {
                2 * c.len()
            } else {
                8192
            }
        })
        .collect();
    let header = 8 + 8 * containers.len();
    let mut out = Vec::with_capacity(header + sizes.iter().sum::<usize>());
    out.extend_from_slice(&NO_RUN_CONTAINERS.to_le_bytes());
    out.extend_from_slice(&(containers.len() as u32).to_le_bytes());
    for c in &containers {
        out.extend_from_slice(&((c[0] >> 16) as u16).to_le_bytes());
        out.extend_from_slice(&((c.len() - 1) as u16).to_le_bytes());
    }
    let mut offset = header;
    for size in &sizes {
        out.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += size;
    }
    for c in &containers {
        if c.len() <= ARRAY_LIMIT {
            c.iter()
                .for_each(|m| out.extend_from_slice(&(*m as u16).to_le_bytes()));
        } else {
            let mut bits = [0u64; 1024];
            for &m in *c {
                let low = m & 0xffff;
                bits[(low >> 6) as usize] |= 1 << (low & 63);
            }
            bits.iter()
                .for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        }
    }
    out
}

/// A bitmap of ascending members, each once: written in the portable form and read back,
/// which costs less than roaring's own push a member.
fn bitmap_of(sorted: &[u32]) -> RoaringBitmap {
    RoaringBitmap::deserialize_from(&serialize_sorted(sorted)[..])
        .unwrap_or_else(|_| sorted.iter().copied().collect())
}

/// The members of two ascending runs, ascending and each once.
fn merge_ascending(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = vec![0; a.len() + b.len()];
    let (mut i, mut j, mut n) = (0, 0, 0);
    // Without a branch on which run is ahead: runs of two fiscal years interleave member by
    // member, and such a branch would be mispredicted about every other member.
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        out[n] = x.min(y);
        n += 1;
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    out.truncate(n);
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// A cell's contributions: the total, the identified persons contributing anything (a sum over
/// others than these would differ by their values), and the largest per-person sums, largest
/// first.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    pub form: Form,
    pub total: f64,
    pub persons: RoaringBitmap,
    pub top: Vec<f64>,
}

/// What a section of contributions holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Every person's sum was known: `top` are the largest.
    Exact = 0,
    /// The cell came in parts (ascending runs of persons, partial states), a person's sum exact
    /// within each: the first n of `top` sum to at least the n largest contributions.
    Bounds = 1,
    /// As `Bounds`, and some person's sum was zero in a part. Whether they add anything in
    /// another part is not known, so `persons` (the group's) may hold persons who add nothing.
    PersonsUnknown = 2,
}

impl Contributions {
    /// The sections of one cell of `niji_contributions`, one per value it was given. A section
    /// cut short is left out (a check that finds its section missing fails closed). None: the
    /// cell was written in another form (a result held before the form changed).
    pub fn decode(bytes: &[u8]) -> Option<Vec<Self>> {
        let (&CONTRIBUTIONS_FORM, mut rest) = bytes.split_first()? else {
            return None;
        };
        let mut out = Vec::new();
        while let Some(section) = Self::decode_section(&mut rest) {
            out.push(section);
        }
        Some(out)
    }

    fn decode_section(rest: &mut &[u8]) -> Option<Self> {
        let form = match take(rest, 1)? {
            [0] => Form::Exact,
            [1] => Form::Bounds,
            [2] => Form::PersonsUnknown,
            _ => return None,
        };
        let total = read_f64(rest)?;
        let n = read_u32(rest)?;
        let top = (0..n)
            .map(|_| read_f64(rest))
            .collect::<Option<Vec<f64>>>()?;
        let len = read_u32(rest)? as usize;
        let persons = RoaringBitmap::deserialize_from(take(rest, len)?).ok()?;
        Some(Self {
            form,
            total,
            persons,
            top,
        })
    }

    /// Appends a section in the form [`Contributions::decode`] reads.
    pub(crate) fn encode_section(
        form: Form,
        total: f64,
        top: &[f64],
        persons: &RoaringBitmap,
        out: &mut Vec<u8>,
    ) {
        out.push(form as u8);
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(&(top.len() as u32).to_le_bytes());
        for v in top {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(persons.serialized_size() as u32).to_le_bytes());
        // Writing to a Vec cannot fail.
        let _ = persons.serialize_into(&mut *out);
    }
}

/// The first byte of a contributions cell: its form, so that a cell written in an earlier form
/// is told apart rather than misread.
pub(crate) const CONTRIBUTIONS_FORM: u8 = 3;

/// A little-endian u32, or f64, at the start of `rest`, which moves past it.
fn read_u32(rest: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(rest, 4)?.try_into().ok()?))
}

fn read_f64(rest: &mut &[u8]) -> Option<f64> {
    Some(f64::from_le_bytes(take(rest, 8)?.try_into().ok()?))
}

/// The first `n` bytes of `rest`, which moves past them.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

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
struct Group {
    set: RoaringBitmap,
    /// Ascending runs closed, and the open one.
    runs: Vec<Vec<u32>>,
    newest: Run,
    pending: Vec<u32>,
    dense: bool,
}

/// Ascending runs a group takes as runs before it takes members in any order (a store
/// clustered by fiscal year gives a cell one run per year a partition reads).
const MAX_RUNS: usize = 8;

/// Members buffered per group before they are added to its bitmap.
const PENDING: usize = 4096;
/// Members of an open run kept as a list (four bytes each) before they go into the bitmap (a
/// bit or two bytes each): a large cell's memory stays that of its bitmap.
const RUN_LIST: usize = 1 << 16;
/// Incoming sets up to this size are added member by member.
const SMALL_SET: u64 = 64;

/// An open ascending run. A member is written past its end whether or not it repeats the last
/// (a person's rows in a cell come together as often as not, and a branch on which would be
/// mispredicted that often), and the end moves on only for a new one: its slots always reach
/// beyond its end. The last member is kept beside the slots too, so that a row compares with
/// it without first reading where the slots are.
#[derive(Debug, Default)]
struct Run {
    slots: Vec<u32>,
    len: usize,
    /// `slots[len - 1]` while `len > 0`.
    last_member: u32,
}

impl Run {
    fn last(&self) -> Option<u32> {
        (self.len > 0).then_some(self.last_member)
    }

    fn members(&self) -> &[u32] {
        &self.slots[..self.len]
    }

    /// Appends `member` unless it repeats the last; false (and nothing added) if it is below.
    #[inline(always)]
    fn extend(&mut self, member: u32) -> bool {
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
    fn grow(&mut self) {
        self.slots.resize((self.slots.len() * 2).max(8), 0);
    }

    /// Its members, leaving it empty.
    fn take(&mut self) -> Vec<u32> {
        let mut members = std::mem::take(&mut self.slots);
        members.truncate(std::mem::take(&mut self.len));
        members
    }

    /// Keeps only its last member.
    fn keep_last(&mut self) {
        if let Some(last) = self.last() {
            self.slots[0] = last;
            self.len = 1;
        }
    }
}

impl Group {
    #[inline(always)]
    fn push(&mut self, member: u32) {
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
    fn push_below(&mut self, member: u32) {
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
    fn settle_newest(&mut self) {
        self.set |= bitmap_of(self.newest.members());
        self.newest.keep_last();
    }

    /// The runs' members, ascending and each once.
    fn merged_runs(&mut self) -> Vec<u32> {
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

    fn flush(&mut self) {
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

    fn union(&mut self, other: RoaringBitmap) {
        if other.len() <= SMALL_SET {
            for member in &other {
                self.push(member);
            }
        } else {
            self.flush();
            self.set |= other;
        }
    }

    fn finish(mut self) -> RoaringBitmap {
        self.flush();
        let runs = self.merged_runs();
        self.set |= bitmap_of(&runs);
        self.set
    }

    /// The set serialized as [`encode_set`] would, written directly from the runs where they
    /// hold every member.
    fn encode(mut self) -> Vec<u8> {
        self.flush();
        if self.set.is_empty() {
            return serialize_sorted(&self.merged_runs());
        }
        encode_set(&self.finish())
    }

    /// Members held, some perhaps twice (in the set and still pending): a bound on its size.
    fn held(&self) -> usize {
        self.set.len() as usize
            + self.runs.iter().map(Vec::len).sum::<usize>()
            + self.newest.len
            + self.pending.len()
    }

    /// Adds the members of a set (an inner aggregate's).
    fn add_set(&mut self, bytes: &[u8]) -> Result<()> {
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
fn for_each_chosen(
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

fn grow<T: Default>(v: &mut Vec<T>, total: usize) {
    if v.len() < total {
        v.resize_with(total, T::default);
    }
}

#[derive(Debug, Default)]
struct SetGroups {
    groups: Vec<Group>,
    /// Values added so far: a cheap bound on the sets' size (a roaring set of n values takes
    /// at most about 2n bytes plus its containers; a pending value 4).
    added: usize,
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
trait MemberGroups: Send + Sync + Sized + 'static {
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
struct Members<T>(T);

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
const ANONYMOUS: u32 = 0x8000_0000;

/// Per group, up to `cap` distinct members (unsorted; linear search is fastest at the small
/// caps policies use).
#[derive(Debug)]
struct FewGroups {
    cap: usize,
    groups: Vec<Few>,
    /// Groups below the cap: once there are none, a batch of rows is skipped without being
    /// read (most cells of a large aggregate fill up within their first rows).
    open: usize,
    /// Members kept outside the groups' inline space (counted as they come: `size` is asked
    /// for every batch, and a million groups must not be walked each time).
    spilled: usize,
}

/// A group's members, inline up to the usual caps (no allocation for each of a million groups).
type Few = smallvec::SmallVec<[u32; 4]>;

impl FewGroups {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            groups: Vec::new(),
            open: 0,
            spilled: 0,
        }
    }
}

/// The counts [`FewGroups`] keeps while it takes a batch's members.
struct FewCounts<'a> {
    cap: usize,
    spilled: &'a mut usize,
    open: &'a mut usize,
}

impl FewCounts<'_> {
    #[inline(always)]
    fn insert(&mut self, members: &mut Few, m: u32) {
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

impl MemberGroups for FewGroups {
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
        let mut counts = FewCounts {
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
        self.groups.capacity() * std::mem::size_of::<Few>() + 8 * self.spilled
    }
}

/// Per group, each person's sums of |value|, one for each of the aggregate's values: one
/// lookup a row, however many magnitudes share the pass.
#[derive(Debug)]
struct ContributionGroups {
    /// Values per row (magnitudes sharing this aggregate).
    k: usize,
    groups: Vec<PersonSums>,
    entries: usize,
    anonymous: u32,
}

/// One group's per-person sums. While persons arrive in a few ascending runs (a store clustered
/// by fiscal year and person hands each cell its persons so), they are a list: a row costs a
/// compare and an add or a push, where a map costs a hash and, among millions of (cell, person)
/// entries, a cache miss. A run beyond [`MAX_RUNS`] moves them into a map.
#[derive(Debug, Default)]
struct PersonSums {
    /// Persons in ascending runs (one person may be in several), and their k sums each in the
    /// same order.
    persons: Vec<u32>,
    sums: Vec<f64>,
    /// Runs begun after the first.
    runs: u8,
    map: Option<HashMap<u32, Sums>>,
}

/// A person's k sums in the map, inline for up to two values.
type Sums = smallvec::SmallVec<[f64; 2]>;

/// A state entry: a person and k sums, little-endian.
fn state_entry(entry: &[u8]) -> (u32, impl Fn(usize) -> f64 + '_) {
    let (p, sums) = entry.split_at(4);
    let person = u32::from_le_bytes(p.try_into().unwrap_or_default());
    (person, move |j: usize| {
        f64::from_le_bytes(sums[8 * j..][..8].try_into().unwrap_or_default())
    })
}

impl PersonSums {
    fn len(&self) -> usize {
        self.map.as_ref().map_or(self.persons.len(), HashMap::len)
    }

    /// Adds `value(j)` to `person`'s k sums; whether that took a new entry (a person new to the
    /// group, or to its run).
    #[inline]
    fn add(&mut self, k: usize, person: u32, value: impl Fn(usize) -> f64) -> bool {
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
    fn merge_state(&mut self, k: usize, state: &[u8]) -> usize {
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
    fn into_sorted(self, k: usize) -> (Vec<u32>, Vec<f64>) {
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
fn largest(values: impl Iterator<Item = f64>) -> Top {
    let mut top = Top::new();
    values.for_each(|v| keep_largest(&mut top, v));
    top
}

impl ContributionGroups {
    fn new(k: usize) -> Self {
        Self {
            k,
            groups: Vec::new(),
            entries: 0,
            anonymous: 0,
        }
    }

    /// Per group: each person and their k sums, as little-endian bytes, persons ascending.
    fn state_array(&self, groups: Vec<PersonSums>) -> ArrayRef {
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

    fn take(&mut self, emit_to: EmitTo) -> Vec<PersonSums> {
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

pub const CELL_FUNCTION: &str = "niji_cell";
/// The fields of a `niji_cell` result: a set as `niji_set` gives it, and contributions as
/// `niji_contributions` does.
pub const CELL_PERSONS: &str = "persons";
pub const CELL_CONTRIBUTIONS: &str = "contributions";

/// `niji_cell(person, value...)`: the persons of each group and their contributions to k
/// magnitudes in one pass, where `niji_set` and `niji_contributions` take two and keep every
/// person's sums. A person's rows come together within an ascending run of persons (a store
/// clustered by fiscal year and person hands each cell a few runs), so their sum is exact
/// there; a run keeps only its largest sums. The n largest totals of persons are then at most
/// the sum over runs of each run's n largest: a cell that passes dominance and p-percent on these
/// bounds passes on exact sums, and one that does not is checked again exactly.
pub fn cell_udaf() -> AggregateUDF {
    niji_udaf(Kind::Cell, Signature::variadic_any(Volatility::Immutable))
}

pub const CEILED_FUNCTION: &str = "niji_ceiled";

/// `niji_ceiled(person, value...)`: what `niji_cell` gives, for values whose largest
/// per-person sums are bounded by `ceilings` (one per value: its stored column's, see
/// [`niji_catalog::Ceiling`]): each group's persons and its totals of |value|, in one pass and
/// with nothing kept per person. A cell the ceilings do not settle is checked again exactly.
pub fn ceiled_udaf(ceilings: &[Vec<f64>]) -> AggregateUDF {
    AggregateUDF::new_from_impl(NijiUdaf {
        kind: Kind::Ceiled,
        signature: Signature::variadic_any(Volatility::Immutable),
        ceilings: ceilings
            .iter()
            .map(|c| c.iter().map(|v| v.to_bits()).collect())
            .collect(),
    })
}

fn cell_fields() -> arrow::datatypes::Fields {
    vec![
        Field::new(CELL_PERSONS, DataType::Binary, false),
        Field::new(CELL_CONTRIBUTIONS, DataType::Binary, false),
    ]
    .into()
}

/// `niji_cell_persons(cell)` / `niji_cell_contributions(cell)`: one field of a `niji_cell`
/// result. DataFusion's `get_field` would serve, but its optimizer moves field accesses
/// towards the scan (`push_down_leaf_projections`), which fails on an aggregate's result.
pub fn cell_field_udf(field: &'static str) -> ScalarUDF {
    ScalarUDF::new_from_impl(CellField {
        name: format!("niji_cell_{field}"),
        field,
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CellField {
    name: String,
    field: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for CellField {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    /// Never null, as `niji_set` and `niji_contributions`: the shadow with cells has the
    /// schema of the one without.
    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(&self.name, DataType::Binary, false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let field = |cells: &arrow::array::StructArray| {
            cells
                .column_by_name(self.field)
                .cloned()
                .ok_or_else(|| exec_datafusion_err!("a cell has no {}", self.field))
        };
        match args.args.first() {
            Some(ColumnarValue::Array(a)) => match a.as_struct_opt() {
                Some(cells) => Ok(ColumnarValue::Array(field(cells)?)),
                None => exec_err!("{} takes a cell", self.name),
            },
            Some(ColumnarValue::Scalar(ScalarValue::Struct(cells))) => Ok(ColumnarValue::Scalar(
                ScalarValue::try_from_array(&field(cells)?, 0)?,
            )),
            _ => exec_err!("{} takes a cell", self.name),
        }
    }
}

/// A run's largest sums, largest first.
type Top = smallvec::SmallVec<[f64; TOP_CONTRIBUTIONS + 1]>;

/// One value's contributions to a cell.
#[derive(Debug, Default, Clone)]
struct ValueBounds {
    total: f64,
    /// What a sum must exceed to be among the open part's largest, once it has
    /// [`TOP_CONTRIBUTIONS`]: most entries are told apart by it alone.
    floor: f64,
    /// The open part's largest sums, and per rank the sum of the closed parts' (the bounds).
    part: Top,
    closed: [f64; TOP_CONTRIBUTIONS],
    /// Persons whose sum in a part was zero.
    zeros: Vec<u32>,
}

impl ValueBounds {
    #[inline]
    fn enter(&mut self, sum: f64) {
        self.total += sum;
        if sum > self.floor || self.part.len() < TOP_CONTRIBUTIONS {
            keep_largest(&mut self.part, sum);
            if self.part.len() == TOP_CONTRIBUTIONS {
                self.floor = self.part[TOP_CONTRIBUTIONS - 1];
            }
        }
    }

    fn close_part(&mut self) {
        self.closed
            .iter_mut()
            .zip(self.part.drain(..))
            .for_each(|(c, s)| *c += s);
        self.floor = 0.0;
    }
}

/// Keeps `v` in `top` (largest first) if it is among the [`TOP_CONTRIBUTIONS`] largest.
fn keep_largest(top: &mut Top, v: f64) {
    if top.len() < TOP_CONTRIBUTIONS || top.last().is_some_and(|min| v > *min) {
        let at = top.partition_point(|t| *t >= v);
        top.insert(at, v);
        top.truncate(TOP_CONTRIBUTIONS);
    }
}

/// A cell's open entry: the person whose rows in this run it has summed so far, and the k
/// sums. [`CellGroups`] keeps every group's in two arrays beside the cells, so that a row adding
/// to its entry (most rows) touches a few bytes, not a cell and its bounds, which among hundreds
/// of cells would be out of the first-level cache nearly every row.
struct Entry<'a> {
    person: &'a mut Option<u32>,
    sums: &'a mut [f64],
}

impl Entry<'_> {
    /// Adds a row of `person` if the entry is theirs; whether it was.
    #[inline(always)]
    fn continues(&mut self, person: u32, value: &impl Fn(usize) -> f64) -> bool {
        if *self.person != Some(person) {
            return false;
        }
        for (j, sum) in self.sums.iter_mut().enumerate() {
            *sum += value(j).abs();
        }
        true
    }
}

#[derive(Debug)]
struct Cell {
    persons: Group,
    /// Parts begun (runs, and states merged in), and whether one is open.
    parts: u32,
    part_open: bool,
    values: Vec<ValueBounds>,
}

impl Cell {
    fn new(k: usize) -> Self {
        Self {
            persons: Group::default(),
            parts: 0,
            part_open: false,
            values: vec![ValueBounds::default(); k],
        }
    }

    /// A row of `person`, summed into `entry`; whether it opened an entry. Inlined into the
    /// row loop for the common row, which only continues the entry.
    #[inline(always)]
    fn add(&mut self, entry: &mut Entry<'_>, person: u32, value: impl Fn(usize) -> f64) -> bool {
        if entry.continues(person, &value) {
            return false;
        }
        self.open_entry(entry, person, value);
        true
    }

    /// Closes `entry` (another person's, or none) and opens it for `person`.
    fn open_entry(&mut self, entry: &mut Entry<'_>, person: u32, value: impl Fn(usize) -> f64) {
        if let Some(open) = *entry.person {
            self.close_entry(open, entry.sums);
            // A person below the open one begins a run.
            if person < open {
                self.close_part();
            }
        }
        self.begin_part();
        *entry.person = Some(person);
        self.persons.push(person);
        for (j, sum) in entry.sums.iter_mut().enumerate() {
            *sum = value(j).abs();
        }
    }

    /// A row of no identified person: an entry of its own, and nobody's.
    fn add_anonymous(&mut self, value: impl Fn(usize) -> f64) {
        self.begin_part();
        for (j, v) in self.values.iter_mut().enumerate() {
            let sum = value(j).abs();
            if sum != 0.0 {
                v.enter(sum);
            }
        }
    }

    fn begin_part(&mut self) {
        if !self.part_open {
            // Saturating: a count that wrapped round would claim one part, and exactness.
            self.parts = self.parts.saturating_add(1);
            self.part_open = true;
        }
    }

    fn close_entry(&mut self, person: u32, sums: &[f64]) {
        for (v, &sum) in self.values.iter_mut().zip(sums) {
            if sum == 0.0 {
                v.zeros.push(person);
            } else {
                v.enter(sum);
            }
        }
    }

    fn close_part(&mut self) {
        self.values.iter_mut().for_each(ValueBounds::close_part);
        self.part_open = false;
    }

    /// Closes `entry`, and the open part: the cell is then handed on.
    fn finish(&mut self, entry: &mut Entry<'_>) {
        if let Some(open) = entry.person.take() {
            self.close_entry(open, entry.sums);
        }
        self.close_part();
    }

    /// The partial state of a finished cell: parts, the set, then per value its total, bounds
    /// and zeros.
    fn state(mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.parts.to_le_bytes());
        let set = std::mem::take(&mut self.persons).encode();
        out.extend_from_slice(&(set.len() as u32).to_le_bytes());
        out.extend_from_slice(&set);
        for v in &self.values {
            out.extend_from_slice(&v.total.to_le_bytes());
            v.closed
                .iter()
                .for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
            out.extend_from_slice(&(v.zeros.len() as u32).to_le_bytes());
            v.zeros
                .iter()
                .for_each(|z| out.extend_from_slice(&z.to_le_bytes()));
        }
    }

    /// Adds a partial state ([`Cell::state`]); how many members it brought. A state of one
    /// entry (a row handed on alone, as DataFusion does where it skips partial aggregation, or
    /// one person's rows) joins the open run as an entry: a part each would leave a grouping of
    /// many small groups with bounds no better than their totals, and a recheck every time.
    /// Other states are parts of their own. Nothing is added from a state cut short.
    fn merge(&mut self, entry: &mut Entry<'_>, state: &[u8]) -> Result<usize> {
        let Some(state) = CellState::read(state, self.values.len()) else {
            return exec_err!("a cell's partial state was cut short");
        };
        let value = |j: usize| state.values[j].total;
        match state.single_entry()? {
            Some(Some(person)) => return Ok(usize::from(self.add(entry, person, value))),
            Some(None) => {
                self.add_anonymous(value);
                return Ok(0);
            }
            None => {}
        }
        self.persons.add_set(state.set)?;
        self.parts = self.parts.saturating_add(state.parts);
        let mut members = state.set.len() / 4;
        for (v, read) in self.values.iter_mut().zip(state.values) {
            v.total += read.total;
            v.closed
                .iter_mut()
                .zip(read.closed)
                .for_each(|(c, bound)| *c += bound);
            members += read.zeros.len();
            v.zeros.extend(read.zeros);
        }
        Ok(members)
    }

    /// The set of a finished cell, and one section per value (see [`Contributions::decode`]).
    fn evaluate(self) -> (Vec<u8>, Vec<u8>) {
        let persons = self.persons.finish();
        let mut contributions = vec![CONTRIBUTIONS_FORM];
        for v in &self.values {
            let form = match (self.parts <= 1, v.zeros.is_empty()) {
                (true, _) => Form::Exact,
                (false, true) => Form::Bounds,
                (false, false) => Form::PersonsUnknown,
            };
            // In one part a person is one entry: a zero sum is theirs in all.
            let contributors = match form {
                Form::Exact => &persons - v.zeros.iter().copied().collect::<RoaringBitmap>(),
                Form::Bounds | Form::PersonsUnknown => persons.clone(),
            };
            let top: Vec<f64> = v.closed.iter().copied().take_while(|c| *c != 0.0).collect();
            Contributions::encode_section(form, v.total, &top, &contributors, &mut contributions);
        }
        (encode_set(&persons), contributions)
    }
}

/// A cell's partial state as [`Cell::state`] wrote it.
struct CellState<'a> {
    parts: u32,
    set: &'a [u8],
    values: Vec<ValueState>,
}

struct ValueState {
    total: f64,
    closed: [f64; TOP_CONTRIBUTIONS],
    zeros: Vec<u32>,
}

/// A serialized roaring set of one member is about 20 bytes: longer ones are not read twice.
const ONE_MEMBER_BYTES: usize = 32;

impl<'a> CellState<'a> {
    fn read(mut state: &'a [u8], k: usize) -> Option<Self> {
        let rest = &mut state;
        let parts = read_u32(rest)?;
        let len = read_u32(rest)? as usize;
        let set = take(rest, len)?;
        let values = (0..k)
            .map(|_| {
                let total = read_f64(rest)?;
                let mut closed = [0.0; TOP_CONTRIBUTIONS];
                for c in &mut closed {
                    *c = read_f64(rest)?;
                }
                let zeros = (0..read_u32(rest)?)
                    .map(|_| read_u32(rest))
                    .collect::<Option<_>>()?;
                Some(ValueState {
                    total,
                    closed,
                    zeros,
                })
            })
            .collect::<Option<_>>()?;
        Some(Self { parts, set, values })
    }

    /// Whether it is one entry, and whose (None: a record of nobody): one part, at most one
    /// person, and per value at most one sum, which is then the total.
    fn single_entry(&self) -> Result<Option<Option<u32>>> {
        if self.parts != 1 || self.set.len() > ONE_MEMBER_BYTES {
            return Ok(None);
        }
        let members = decode_set(self.set)?;
        let one_sum =
            |v: &ValueState| v.closed[1..].iter().all(|c| *c == 0.0) && v.total == v.closed[0];
        Ok(match (members.len(), members.min()) {
            (0, _) if self.values.iter().all(|v| v.zeros.is_empty() && one_sum(v)) => Some(None),
            (1, Some(person))
                if self.values.iter().all(|v| {
                    (v.zeros.is_empty() && one_sum(v))
                        || (v.zeros == [person] && v.total == 0.0 && v.closed[0] == 0.0)
                }) =>
            {
                Some(Some(person))
            }
            _ => None,
        })
    }
}

/// The accumulator of `niji_cell`.
#[derive(Debug)]
struct CellGroups {
    k: usize,
    /// Per group, its open entry (see [`Entry`]): the person, and k sums.
    open: Vec<Option<u32>>,
    sums: Vec<f64>,
    cells: Vec<Cell>,
    /// Members added so far (set members, zeros): a cheap bound on the cells' size.
    added: usize,
}

impl CellGroups {
    fn new(k: usize) -> Self {
        Self {
            k,
            open: Vec::new(),
            sums: Vec::new(),
            cells: Vec::new(),
            added: 0,
        }
    }

    fn entry(&mut self, group: usize) -> (&mut Cell, Entry<'_>) {
        let k = self.k;
        let entry = Entry {
            person: &mut self.open[group],
            sums: &mut self.sums[group * k..(group + 1) * k],
        };
        (&mut self.cells[group], entry)
    }

    /// The cells to hand on, finished (their entries and parts closed).
    fn take(&mut self, emit_to: EmitTo) -> Vec<Cell> {
        let taken = match emit_to {
            EmitTo::All => self.cells.len(),
            EmitTo::First(n) => n.min(self.cells.len()),
        };
        for group in 0..taken {
            let (cell, mut entry) = self.entry(group);
            cell.finish(&mut entry);
        }
        self.open.drain(..taken);
        self.sums.drain(..taken * self.k);
        let cells: Vec<Cell> = self.cells.drain(..taken).collect();
        self.added = self
            .cells
            .iter()
            .map(|c| c.persons.held() + c.values.iter().map(|v| v.zeros.len()).sum::<usize>())
            .sum();
        cells
    }
}

impl Contributing for CellGroups {
    /// A person is in the set whatever their values; a record of nobody only with a value.
    #[inline]
    fn take(
        &mut self,
        group: usize,
        person: Option<u32>,
        valued: bool,
        value: impl Fn(usize) -> f64,
    ) {
        match person {
            Some(person) => {
                // The common row continues its person's entry: `Cell::add` reads no more.
                let (cell, mut entry) = self.entry(group);
                let opened = cell.add(&mut entry, person, value);
                self.added += usize::from(opened);
            }
            None if valued => self.cells[group].add_anonymous(value),
            None => {}
        }
    }

    fn empty(&self) -> Self {
        Self::new(self.k)
    }

    fn grow(&mut self, total: usize) {
        let k = self.k;
        if self.cells.len() < total {
            self.cells.resize_with(total, || Cell::new(k));
            self.open.resize(total, None);
            self.sums.resize(total * k, 0.0);
        }
    }

    fn merge(&mut self, group: usize, state: &[u8]) -> Result<()> {
        let (cell, mut entry) = self.entry(group);
        let members = cell.merge(&mut entry, state)?;
        self.added += members;
        Ok(())
    }

    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        cell_array(self.take(emit_to).into_iter().map(Cell::evaluate))
    }

    fn emit_state(&mut self, emit_to: EmitTo) -> ArrayRef {
        state_array(self.take(emit_to), Cell::state)
    }

    fn size(&self) -> usize {
        self.cells.capacity() * std::mem::size_of::<Cell>()
            + self.open.capacity() * std::mem::size_of::<Option<u32>>()
            + self.sums.capacity() * std::mem::size_of::<f64>()
            + self.cells.len() * self.k * std::mem::size_of::<ValueBounds>()
            + 4 * self.added
    }
}

/// Cells as `niji_cell` and `niji_ceiled` give them: each group's set and contributions.
fn cell_array(cells: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<ArrayRef> {
    let mut persons = BinaryBuilder::new();
    let mut contributions = BinaryBuilder::new();
    for (set, sections) in cells {
        persons.append_value(set);
        contributions.append_value(sections);
    }
    Ok(Arc::new(arrow::array::StructArray::try_new(
        cell_fields(),
        vec![Arc::new(persons.finish()), Arc::new(contributions.finish())],
        None,
    )?))
}

/// Partial states, one a group, each written by `write` into a buffer reused from group to
/// group.
fn state_array<T>(
    groups: impl IntoIterator<Item = T>,
    mut write: impl FnMut(T, &mut Vec<u8>),
) -> ArrayRef {
    let mut out = BinaryBuilder::new();
    let mut bytes = Vec::new();
    for group in groups {
        bytes.clear();
        write(group, &mut bytes);
        out.append_value(&bytes);
    }
    Arc::new(out.finish())
}

/// The accumulator of `niji_ceiled`.
#[derive(Debug)]
struct CeiledGroups {
    /// Per value, its ceiling's largest totals.
    ceilings: Arc<Vec<Vec<f64>>>,
    persons: Vec<Group>,
    /// Per group, k totals of |value|.
    totals: Vec<f64>,
    /// Members added so far: a cheap bound on the sets' size.
    added: usize,
}

impl CeiledGroups {
    fn new(ceilings: Vec<Vec<f64>>) -> Self {
        Self {
            ceilings: Arc::new(ceilings),
            persons: Vec::new(),
            totals: Vec::new(),
            added: 0,
        }
    }

    fn k(&self) -> usize {
        self.ceilings.len()
    }

    /// The groups to hand on: their sets and totals.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<Group>, Vec<f64>) {
        let groups = emit_to.take_needed(&mut self.persons);
        let totals = self.totals.drain(..groups.len() * self.k()).collect();
        self.added = self.persons.iter().map(Group::held).sum();
        (groups, totals)
    }
}

impl Contributing for CeiledGroups {
    #[inline]
    fn take(
        &mut self,
        group: usize,
        person: Option<u32>,
        valued: bool,
        value: impl Fn(usize) -> f64,
    ) {
        if let Some(person) = person {
            self.persons[group].push(person);
            self.added += 1;
        } else if !valued {
            return;
        }
        let k = self.k();
        for (j, total) in self.totals[group * k..(group + 1) * k]
            .iter_mut()
            .enumerate()
        {
            *total += value(j).abs();
        }
    }

    fn empty(&self) -> Self {
        Self {
            ceilings: self.ceilings.clone(),
            persons: Vec::new(),
            totals: Vec::new(),
            added: 0,
        }
    }

    fn grow(&mut self, total: usize) {
        grow(&mut self.persons, total);
        self.totals.resize(total * self.k(), 0.0);
    }

    /// A state: the set's length and the set, then the k totals.
    fn merge(&mut self, group: usize, state: &[u8]) -> Result<()> {
        let k = self.k();
        let rest = &mut &state[..];
        let set = read_u32(rest).and_then(|len| take(rest, len as usize));
        let totals = (0..k).map(|_| read_f64(rest)).collect::<Option<Vec<f64>>>();
        let (Some(set), Some(totals)) = (set, totals) else {
            return exec_err!("a ceiled cell's partial state was cut short");
        };
        self.persons[group].add_set(set)?;
        self.added += set.len() / 4;
        for (sum, t) in self.totals[group * k..(group + 1) * k]
            .iter_mut()
            .zip(totals)
        {
            *sum += t;
        }
        Ok(())
    }

    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let k = self.k();
        let (groups, totals) = self.take(emit_to);
        let ceilings = self.ceilings.clone();
        cell_array(
            groups
                .into_iter()
                .zip(totals.chunks(k))
                .map(|(group, totals)| {
                    let set = group.finish();
                    let mut sections = vec![CONTRIBUTIONS_FORM];
                    // Every person with a row contributes (a ceiled sum's column has no zero).
                    for (&total, largest) in totals.iter().zip(ceilings.iter()) {
                        Contributions::encode_section(
                            Form::Bounds,
                            total,
                            largest,
                            &set,
                            &mut sections,
                        );
                    }
                    (encode_set(&set), sections)
                }),
        )
    }

    fn emit_state(&mut self, emit_to: EmitTo) -> ArrayRef {
        let k = self.k();
        let (groups, totals) = self.take(emit_to);
        state_array(
            groups.into_iter().zip(totals.chunks(k)),
            |(group, totals), bytes| {
                let set = group.encode();
                bytes.extend_from_slice(&(set.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&set);
                totals
                    .iter()
                    .for_each(|t| bytes.extend_from_slice(&t.to_le_bytes()));
            },
        )
    }

    fn size(&self) -> usize {
        self.persons.capacity() * std::mem::size_of::<Group>()
            + self.totals.capacity() * std::mem::size_of::<f64>()
            + 4 * self.added
    }
}

/// Accumulators of contributions per group ([`ContributionGroups`], [`CellGroups`],
/// [`CeiledGroups`]): how they
/// take a row (its group, its person (None: no ID5), whether it has any value, and its k
/// values, 0 for a null one), grow, merge a state and hand on what they hold; [`ByPerson`]
/// makes a DataFusion groups accumulator of either.
trait Contributing: Send + Sync + Sized + 'static {
    fn take(
        &mut self,
        group: usize,
        person: Option<u32>,
        valued: bool,
        value: impl Fn(usize) -> f64,
    );
    /// One without groups, of the same values.
    fn empty(&self) -> Self;
    fn grow(&mut self, total: usize);
    fn merge(&mut self, group: usize, state: &[u8]) -> Result<()>;
    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef>;
    fn emit_state(&mut self, emit_to: EmitTo) -> ArrayRef;
    fn size(&self) -> usize;
}

/// The groups accumulator over a [`Contributing`].
#[derive(Debug)]
struct ByPerson<T>(T);

impl<T: Contributing> GroupsAccumulator for ByPerson<T> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.grow(total_num_groups);
        add_contribution_rows(&mut self.0, values, group_indices, opt_filter);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.0.emit(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.0.emit_state(emit_to)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.grow(total_num_groups);
        let states = values[0].as_binary::<i32>();
        for (row, &g) in group_indices.iter().enumerate() {
            if states.is_valid(row) {
                self.0.merge(g, states.value(row))?;
            }
        }
        Ok(())
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
        add_contribution_rows(&mut one, values, &indices, opt_filter);
        Ok(vec![one.emit_state(EmitTo::All)])
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

/// Hands `into` the rows of `values` (the person column, then the k value columns) the filter
/// selects.
fn add_contribution_rows(
    into: &mut impl Contributing,
    values: &[ArrayRef],
    group_indices: &[usize],
    opt_filter: Option<&BooleanArray>,
) {
    let persons = values[0].as_primitive::<UInt32Type>();
    let amounts: Vec<&arrow::array::Float64Array> = values[1..]
        .iter()
        .map(|v| v.as_primitive::<Float64Type>())
        .collect();
    if opt_filter.is_none()
        && persons.null_count() == 0
        && amounts.iter().all(|a| a.null_count() == 0)
    {
        // Every row counts, every person is known, every value is there (the common batch):
        // the values are read as they lie, without asking about nulls a row.
        let persons = persons.values();
        let amounts: Vec<&[f64]> = amounts.iter().map(|a| &a.values()[..]).collect();
        for (row, &g) in group_indices.iter().enumerate() {
            into.take(g, Some(persons[row]), true, |j| amounts[j][row]);
        }
        return;
    }
    for (row, &g) in group_indices.iter().enumerate() {
        if !selected(opt_filter, row) {
            continue;
        }
        let valued = amounts.iter().any(|a| a.is_valid(row));
        let person = persons.is_valid(row).then(|| persons.value(row));
        into.take(g, person, valued, |j| {
            if amounts[j].is_valid(row) {
                amounts[j].value(row)
            } else {
                0.0
            }
        });
    }
}

/// A groups accumulator used for an aggregate without GROUP BY (one group).
pub(crate) struct OneGroup(Box<dyn GroupsAccumulator + Sync>);

impl std::fmt::Debug for OneGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneGroup")
    }
}

impl OneGroup {
    /// Its one group exists before any row arrives, so that evaluating an empty input gives
    /// each aggregate's own empty value (an empty set, zero contributions), not a set for all.
    pub(crate) fn new(mut groups: Box<dyn GroupsAccumulator + Sync>) -> Result<Self> {
        let none: ArrayRef = Arc::new(arrow::array::BinaryArray::from(Vec::<&[u8]>::new()));
        groups.merge_batch(&[none], &[], 1)?;
        Ok(Self(groups))
    }
}

impl Accumulator for OneGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; rows], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&self.0.evaluate(EmitTo::All)?, 0)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0
            .state(EmitTo::All)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; rows], 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray, UInt32Array};

    #[test]
    fn a_set_turning_dense_keeps_every_member_once() {
        let mut group = Group::default();
        let mut expected = RoaringBitmap::new();
        let mut x = 0x6e69_u32;
        for i in 0..200_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // Mostly a dense range, with a sparse tail far from it.
            let member = (x >> 8) % 50_000 + if i % 7 == 0 { 1_000_000 } else { 0 };
            group.push(member);
            expected.insert(member);
        }
        assert!(group.dense, "the set went over to direct inserts");
        assert_eq!(group.finish(), expected);
    }

    #[test]
    fn sets_union_across_partial_states_and_count_distinct_persons() {
        let mut a = Members(SetGroups::default());
        let persons: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2, 2, 3, 9]));
        a.update_batch(&[persons], &[0, 0, 1, 1, 1], None, 2)
            .expect("update");
        let mut b = Members(SetGroups::default());
        let more: ArrayRef = Arc::new(UInt32Array::from(vec![1, 4]));
        b.update_batch(&[more], &[0, 0], None, 1).expect("update");
        let state = b.state(EmitTo::All).expect("state");
        a.merge_batch(&state, &[1], 2).expect("merge");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        let out = out.as_binary::<i32>();
        let g0 = decode_set(out.value(0)).expect("set");
        let g1 = decode_set(out.value(1)).expect("set");
        assert_eq!(g0.iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(g1.iter().collect::<Vec<_>>(), [1, 2, 3, 4, 9]);
    }

    #[test]
    fn facility_codes_are_counted_distinct() {
        let mut a = Members(SetGroups::default());
        let codes: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "c"]));
        a.update_batch(&[codes], &[0, 0, 0, 0], None, 1)
            .expect("update");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        assert_eq!(
            decode_set(out.as_binary::<i32>().value(0))
                .expect("set")
                .len(),
            3
        );
    }

    #[test]
    fn contributions_sum_per_person_and_keep_the_largest_of_each_value() {
        let mut a = ByPerson(ContributionGroups::new(2));
        let persons: ArrayRef = Arc::new(UInt32Array::from(vec![1, 1, 2, 3, 4]));
        let first: ArrayRef = Arc::new(Float64Array::from(vec![10.0, 5.0, -3.0, 1.0, 0.0]));
        let second: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.0),
            Some(1.0),
            None,
            Some(0.0),
            Some(9.0),
        ]));
        a.update_batch(&[persons, first, second], &[0, 0, 0, 0, 0], None, 1)
            .expect("update");
        let state = a.state(EmitTo::All).expect("state");
        let mut b = ByPerson(ContributionGroups::new(2));
        b.merge_batch(&state, &[0], 1).expect("merge");
        let out = b.evaluate(EmitTo::All).expect("evaluate");
        let c = Contributions::decode(out.as_binary::<i32>().value(0)).expect("this form");
        assert_eq!(c.len(), 2, "a section per value");
        assert_eq!(c[0].total, 19.0);
        assert_eq!(
            c[0].persons.iter().collect::<Vec<_>>(),
            [1, 2, 3],
            "person 4 contributed nothing"
        );
        assert_eq!(c[0].top, [15.0, 3.0, 1.0]);
        assert_eq!(c[1].total, 11.0);
        assert_eq!(c[1].persons.iter().collect::<Vec<_>>(), [1, 4]);
        assert_eq!(c[1].top, [9.0, 2.0]);
    }

    /// Rows in a few ascending runs of persons (a store clustered by fiscal year and person),
    /// split over two partitions whose persons interleave, give what the same rows in any order
    /// give; the runs keep no map, the shuffled rows fall back to it.
    #[test]
    fn contributions_and_sets_in_person_order_equal_any_order() {
        let mut x = 0x6e69_u64;
        let mut rows: Vec<(usize, u32, f64)> = (0..20_000)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let person = (x >> 40) as u32 % 3_000;
                ((x >> 20) as usize % 3, person, ((x >> 8) % 100) as f64)
            })
            .collect();
        let feed = |rows: &[(usize, u32, f64)]| {
            let mut sets = Members(SetGroups::default());
            let mut sums = ByPerson(ContributionGroups::new(1));
            let persons: ArrayRef =
                Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.1)));
            let values: ArrayRef =
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2)));
            let groups: Vec<usize> = rows.iter().map(|r| r.0).collect();
            sets.update_batch(std::slice::from_ref(&persons), &groups, None, 3)
                .expect("update");
            sums.update_batch(&[persons, values], &groups, None, 3)
                .expect("update");
            (sets, sums)
        };
        let evaluate = |halves: [&[(usize, u32, f64)]; 2]| {
            let (mut sets_a, mut sums_a) = feed(halves[0]);
            let (mut sets_b, mut sums_b) = feed(halves[1]);
            let in_order = sums_a.0.groups.iter().all(|g| g.map.is_none());
            let mut sets = Members(SetGroups::default());
            let mut sums = ByPerson(ContributionGroups::new(1));
            for state in [sets_b.state(EmitTo::All), sets_a.state(EmitTo::All)] {
                sets.merge_batch(&state.expect("state"), &[0, 1, 2], 3)
                    .expect("merge");
            }
            for state in [sums_b.state(EmitTo::All), sums_a.state(EmitTo::All)] {
                sums.merge_batch(&state.expect("state"), &[0, 1, 2], 3)
                    .expect("merge");
            }
            let merged_in_order = sums.0.groups.iter().all(|g| g.map.is_none());
            let sets = sets.evaluate(EmitTo::All).expect("evaluate");
            let sums = sums.evaluate(EmitTo::All).expect("evaluate");
            let cells: Vec<(Vec<u32>, Contributions)> = (0..3)
                .map(|g| {
                    let set = decode_set(sets.as_binary::<i32>().value(g)).expect("set");
                    let c = Contributions::decode(sums.as_binary::<i32>().value(g));
                    (set.iter().collect(), c.expect("this form").remove(0))
                })
                .collect();
            (cells, in_order, merged_in_order)
        };
        let (shuffled, in_order, _) = evaluate([&rows[..10_000], &rows[10_000..]]);
        assert!(!in_order, "shuffled rows went over to the map");
        // Two partitions, each in three "fiscal years" of ascending persons, their persons
        // interleaving.
        let mut years: Vec<(usize, (usize, u32, f64))> = rows.drain(..).enumerate().collect();
        years.sort_by_key(|(i, r)| (i % 3, r.1));
        let (odd, even): (Vec<_>, Vec<_>) = years
            .into_iter()
            .map(|(_, r)| r)
            .partition(|r| r.1 % 2 == 1);
        let (sorted, in_order, merged_in_order) = evaluate([&odd, &even]);
        assert!(in_order && merged_in_order, "person order kept no map");
        assert_eq!(sorted, shuffled);
        assert!(
            sorted
                .iter()
                .all(|(set, c)| set.len() > 900 && c.persons.len() > 900)
        );
    }

    /// A cell of another form is told apart; a cell cut short loses its last section (which a
    /// check then finds missing and masks).
    #[test]
    fn contributions_of_another_form_or_cut_short_are_not_misread() {
        let mut a = ByPerson(ContributionGroups::new(2));
        let persons: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2]));
        let values: ArrayRef = Arc::new(Float64Array::from(vec![3.0, 4.0]));
        a.update_batch(&[persons, values.clone(), values], &[0, 0], None, 1)
            .expect("update");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        let bytes = out.as_binary::<i32>().value(0);
        assert_eq!(Contributions::decode(bytes).map(|c| c.len()), Some(2));
        let mut earlier_form = bytes.to_vec();
        earlier_form[0] = 0;
        assert_eq!(Contributions::decode(&earlier_form), None);
        assert_eq!(Contributions::decode(&[]), None);
        let cut = &bytes[..bytes.len() - 1];
        assert_eq!(Contributions::decode(cut).map(|c| c.len()), Some(1));
    }

    #[test]
    fn few_keeps_up_to_its_cap_across_partial_states() {
        let mut a = Members(FewGroups::new(3));
        let codes: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "c", "d", "x"]));
        a.update_batch(&[codes], &[0, 0, 0, 0, 0, 1], None, 2)
            .expect("update");
        let state = a.state(EmitTo::All).expect("state");
        let mut b = Members(FewGroups::new(3));
        b.merge_batch(&state, &[0, 0], 1).expect("merge");
        let out = b.evaluate(EmitTo::All).expect("evaluate");
        let n = decode_set(out.as_binary::<i32>().value(0))
            .expect("set")
            .len();
        assert_eq!(n, 3, "a, b, c (then full) and x: capped at 3");
        let state = a.convert_to_state(&[Arc::new(UInt32Array::from(vec![Some(7), None]))], None);
        let state = state.expect("state");
        let one = decode_set(state[0].as_binary::<i32>().value(0)).expect("set");
        assert_eq!(one.iter().collect::<Vec<_>>(), [7]);
        assert!(
            decode_set(state[0].as_binary::<i32>().value(1))
                .expect("set")
                .is_empty()
        );
    }

    /// Written directly, a set has the bytes roaring writes for it, and reads back the same,
    /// across array and bitmap containers (4,096 members and one more), several containers
    /// and none; runs merged give each member once.
    #[test]
    fn sets_written_from_runs_are_roaring_s_own_bytes() {
        let cases: Vec<Vec<u32>> = vec![
            vec![],
            vec![7],
            (0..4096).map(|i| i * 3).collect(),
            (0..4097).map(|i| i * 3).collect(),
            (0..70_000).map(|i| i * 5 + (i % 7)).collect(),
            vec![1, 65_535, 65_536, 1 << 20, u32::MAX >> 1],
        ];
        for members in cases {
            let set: RoaringBitmap = members.iter().copied().collect();
            let written = serialize_sorted(&members);
            assert_eq!(written, encode_set(&set), "{} members", members.len());
            assert_eq!(decode_set(&written).expect("reads back"), set);
        }
        let mut group = Group::default();
        for m in [5, 9, 9, 12, 1, 9, 30, 2, 3, 12, 40] {
            group.push(m);
        }
        let expected: RoaringBitmap = [1, 2, 3, 5, 9, 12, 30, 40].into_iter().collect();
        assert_eq!(decode_set(&group.encode()).expect("set"), expected);
        let mut many_runs = Group::default();
        for run in 0..20u32 {
            for m in (0..50).map(|i| i * 20 + run) {
                many_runs.push(m);
            }
        }
        let all: RoaringBitmap = (0..20u32)
            .flat_map(|run| (0..50).map(move |i| i * 20 + run))
            .collect();
        assert_eq!(decode_set(&many_runs.encode()).expect("set"), all);
        // Runs longer than a list holds go into the bitmap as they grow, members kept once.
        let mut long = Group::default();
        let first: Vec<u32> = (0..200_000).map(|i| i * 3).collect();
        let second: Vec<u32> = (0..150_000).map(|i| i * 4 + 1).collect();
        for &m in first.iter().chain(&second) {
            long.push(m);
            long.push(m);
        }
        let listed = long.runs.iter().map(Vec::len).sum::<usize>() + long.newest.len;
        assert!(listed <= 2 * RUN_LIST, "{listed} members in lists");
        let all: RoaringBitmap = first.iter().chain(&second).copied().collect();
        assert_eq!(decode_set(&long.encode()).expect("set"), all);
    }

    /// Batches are skipped while every group is full; a group that arrives later, or one left
    /// after the full ones were emitted, still takes its members.
    #[test]
    fn full_groups_skip_rows_and_new_groups_still_fill() {
        let marks = |m: &[u32]| -> ArrayRef { Arc::new(UInt32Array::from(m.to_vec())) };
        let members = |out: &ArrayRef, group: usize| {
            decode_set(out.as_binary::<i32>().value(group))
                .expect("set")
                .iter()
                .collect::<Vec<_>>()
        };
        let mut a = Members(FewGroups::new(2));
        a.update_batch(&[marks(&[1, 2, 3, 4])], &[0, 0, 1, 1], None, 2)
            .expect("fills both");
        a.update_batch(&[marks(&[5, 6])], &[0, 1], None, 2)
            .expect("skipped");
        a.update_batch(&[marks(&[7, 8, 9])], &[0, 2, 2], None, 3)
            .expect("a new group");
        let first = a.evaluate(EmitTo::First(1)).expect("first");
        assert_eq!(members(&first, 0), [1, 2]);
        a.update_batch(&[marks(&[10])], &[1], None, 2)
            .expect("group 2 is now group 1, and full");
        a.update_batch(&[marks(&[11, 12])], &[1, 2], None, 3)
            .expect("a new group after an emit");
        let rest = a.evaluate(EmitTo::All).expect("rest");
        assert_eq!(members(&rest, 0), [3, 4]);
        assert_eq!(members(&rest, 1), [8, 9]);
        assert_eq!(members(&rest, 2), [12]);
    }

    /// A group of an aggregation by the pseudonym hands on its one person; nulls (no person)
    /// stay null; a second person in a group fails the query instead of hiding one of them.
    #[test]
    fn the_person_of_a_group_is_carried_and_two_persons_fail() {
        let mut a = Members(FirstGroups::person());
        let persons: ArrayRef = Arc::new(UInt32Array::from(vec![Some(7), Some(7), None, Some(9)]));
        a.update_batch(&[persons], &[0, 0, 1, 2], None, 3)
            .expect("update");
        let state = a.state(EmitTo::All).expect("state");
        let mut b = Members(FirstGroups::person());
        b.merge_batch(&state, &[0, 1, 2], 3).expect("merge");
        let more: ArrayRef = Arc::new(UInt32Array::from(vec![7, 9]));
        let filter = BooleanArray::from(vec![Some(true), None]);
        b.update_batch(std::slice::from_ref(&more), &[0, 1], Some(&filter), 3)
            .expect("filtered rows are not taken");
        let out = b.evaluate(EmitTo::All).expect("evaluate");
        let out = out.as_primitive::<UInt32Type>();
        assert_eq!(out.iter().collect::<Vec<_>>(), [Some(7), None, Some(9)]);
        let rows = a.convert_to_state(&[more], Some(&filter)).expect("rows");
        let rows = rows[0].as_primitive::<UInt32Type>();
        assert_eq!(rows.iter().collect::<Vec<_>>(), [Some(7), None]);

        let mut c = Members(FirstGroups::person());
        let two: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2]));
        let err = c.update_batch(&[two], &[0, 0], None, 1).unwrap_err();
        assert!(err.to_string().contains("share a pseudonym"), "{err}");
    }

    /// A group's one facility is its first; others do not fail it (a person visits several).
    #[test]
    fn a_facility_of_a_group_is_its_first() {
        let mut a = Members(FirstGroups::default());
        let marks: ArrayRef = Arc::new(UInt32Array::from(vec![None, Some(5), Some(6), Some(8)]));
        a.update_batch(&[marks], &[0, 0, 0, 1], None, 3)
            .expect("several facilities in a group");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        let out = out.as_primitive::<UInt32Type>();
        assert_eq!(out.iter().collect::<Vec<_>>(), [Some(5), Some(8), None]);
    }

    #[test]
    fn facility_marks_are_counted_as_they_are_and_codes_by_their_marks() {
        let mut a = Members(FewGroups::new(10));
        let codes: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a"]));
        a.update_batch(&[codes], &[0, 0, 0], None, 1)
            .expect("codes");
        let marks: ArrayRef = Arc::new(UInt32Array::from(vec![
            facility_mark("a"),
            facility_mark("c"),
        ]));
        a.update_batch(&[marks], &[0, 0], None, 1).expect("marks");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        let members = decode_set(out.as_binary::<i32>().value(0)).expect("set");
        assert_eq!(members.len(), 3, "a (as code and as mark), b and c");
    }

    #[test]
    fn records_of_nobody_identified_dominate_but_are_no_persons() {
        let mut a = ByPerson(ContributionGroups::new(1));
        let persons: ArrayRef = Arc::new(UInt32Array::from(vec![Some(1), None, Some(2), None]));
        let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 500.0, 2.0, 300.0]));
        a.update_batch(&[persons, values], &[0, 0, 0, 0], None, 1)
            .expect("update");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        let c = &Contributions::decode(out.as_binary::<i32>().value(0)).expect("this form")[0];
        assert_eq!(c.total, 803.0, "their values are in the total");
        assert_eq!(
            c.top,
            [500.0, 300.0, 2.0, 1.0],
            "each record its own contributor"
        );
        assert_eq!(
            c.persons.iter().collect::<Vec<_>>(),
            [1, 2],
            "but nobody they could be counted as"
        );
    }

    /// A cell's evaluated set and sections.
    fn evaluate_cell<T: Contributing>(
        cells: &mut ByPerson<T>,
        group: usize,
    ) -> (RoaringBitmap, Vec<Contributions>) {
        let out = cells.evaluate(EmitTo::All).expect("evaluate");
        let out = out.as_struct();
        let persons = decode_set(out.column(0).as_binary::<i32>().value(group)).expect("set");
        let sections = Contributions::decode(out.column(1).as_binary::<i32>().value(group))
            .expect("this form");
        (persons, sections)
    }

    fn cell_rows<T: Contributing>(
        cells: &mut ByPerson<T>,
        persons: Vec<Option<u32>>,
        values: &[Vec<f64>],
    ) {
        let rows = persons.len();
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(persons))];
        arrays.extend(
            values
                .iter()
                .map(|v| Arc::new(Float64Array::from(v.clone())) as ArrayRef),
        );
        cells
            .update_batch(&arrays, &vec![0; rows], None, 1)
            .expect("update");
    }

    /// A ceiled cell keeps its persons and each value's total of |value| (rows of nobody
    /// included) across partial states, and hands on its ceilings as the bounds of its largest
    /// contributions, with nothing kept per person. A state cut short is refused.
    #[test]
    fn a_ceiled_cell_sums_its_values_and_is_bounded_by_its_ceilings() {
        let ceilings = vec![vec![90.0, 80.0], vec![7.0]];
        let mut states = Vec::new();
        for partition in 0..2u32 {
            let mut cells = ByPerson(CeiledGroups::new(ceilings.clone()));
            cell_rows(
                &mut cells,
                vec![Some(partition), Some(partition), None, Some(5 + partition)],
                &[vec![-3.0, 4.0, 10.0, 1.0], vec![1.0, 1.0, 0.0, 2.0]],
            );
            states.push(cells.state(EmitTo::All).expect("state"));
        }
        let mut merged = ByPerson(CeiledGroups::new(ceilings.clone()));
        for state in &states {
            merged.merge_batch(state, &[0], 1).expect("merge");
        }
        let (persons, sections) = evaluate_cell(&mut merged, 0);
        assert_eq!(persons, [0, 1, 5, 6].into_iter().collect::<RoaringBitmap>());
        let totals: Vec<f64> = sections.iter().map(|s| s.total).collect();
        assert_eq!(totals, [36.0, 8.0]);
        for (section, ceiling) in sections.iter().zip(&ceilings) {
            assert_eq!(section.form, Form::Bounds);
            assert_eq!(&section.top, ceiling);
            assert_eq!(section.persons, persons);
        }
        let whole = states[0][0].as_binary::<i32>().value(0);
        let cut: ArrayRef = Arc::new(arrow::array::BinaryArray::from(vec![
            &whole[..whole.len() - 3],
        ]));
        let mut refused = ByPerson(CeiledGroups::new(ceilings));
        assert!(refused.merge_batch(&[cut], &[0], 1).is_err());
    }

    /// Two runs that overlap and repeat each other's members merge into one ascending run with
    /// each member once, however they interleave.
    #[test]
    fn merged_runs_keep_each_member_once_in_order() {
        let a: Vec<u32> = (0..3_000).filter(|m| m % 3 != 1).collect();
        let b: Vec<u32> = (1_000..5_000).filter(|m| m % 5 != 0).collect();
        let expected: Vec<u32> = a
            .iter()
            .chain(&b)
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(merge_ascending(&a, &b), expected);
        assert_eq!(merge_ascending(&b, &a), expected);
        assert_eq!(merge_ascending(&[], &b), b);
        assert_eq!(merge_ascending(&a, &[]), a);
    }

    /// Within one part the largest sums are exact, in whatever order persons' sums rise and fall
    /// (an entry is told apart by the least of those kept so far, which moves as they do).
    #[test]
    fn a_cell_of_one_part_keeps_exactly_its_largest_sums() {
        let mut rows = Vec::new();
        let mut x = 0x6e69_u32;
        for p in 0..500u32 {
            for _ in 0..1 + p % 3 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                // Sums rising with the person, with noise: the kept ones change early and late.
                rows.push((p, f64::from(p / 4 + (x >> 20) % 97)));
            }
        }
        let mut exact: HashMap<u32, f64> = HashMap::default();
        for &(p, v) in &rows {
            *exact.entry(p).or_default() += v;
        }
        let mut cells = ByPerson(CellGroups::new(1));
        cell_rows(
            &mut cells,
            rows.iter().map(|r| Some(r.0)).collect(),
            &[rows.iter().map(|r| r.1).collect()],
        );
        let (_, sections) = evaluate_cell(&mut cells, 0);
        let mut sums: Vec<f64> = exact.values().copied().collect();
        sums.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(sections[0].form, Form::Exact, "one part");
        assert_eq!(sections[0].top, sums[..TOP_CONTRIBUTIONS]);
        assert_eq!(sections[0].total, sums.iter().sum::<f64>());
    }

    /// Two partitions, each handing the cell its persons in two ascending runs (fiscal years)
    /// that share persons: the set is exact, and each bound is at least the sum it bounds.
    #[test]
    fn a_cell_keeps_its_persons_and_bounds_its_largest_contributions() {
        let mut exact: HashMap<u32, f64> = HashMap::default();
        let mut states = Vec::new();
        for partition in 0..2u32 {
            let mut cells = ByPerson(CellGroups::new(1));
            for year in 0..2u32 {
                let persons: Vec<u32> = (0..60).map(|i| i * 2 + partition).collect();
                // A person's rows come together, two to four of them.
                let rows: Vec<(u32, f64)> = persons
                    .iter()
                    .flat_map(|&p| {
                        (0..2 + (p + year) % 3)
                            .map(move |r| (p, f64::from((p * 7 + r * 13 + year) % 50)))
                    })
                    .collect();
                for &(p, v) in &rows {
                    *exact.entry(p).or_default() += v;
                }
                cell_rows(
                    &mut cells,
                    rows.iter().map(|r| Some(r.0)).collect(),
                    &[rows.iter().map(|r| -r.1).collect()],
                );
            }
            states.push(cells.state(EmitTo::All).expect("state"));
        }
        let mut merged = ByPerson(CellGroups::new(1));
        for state in &states {
            merged.merge_batch(state, &[0], 1).expect("merge");
        }
        let (persons, sections) = evaluate_cell(&mut merged, 0);
        let c = &sections[0];
        assert_eq!(persons, exact.keys().copied().collect::<RoaringBitmap>());
        assert_eq!(c.form, Form::Bounds, "four parts");
        assert_eq!(c.persons, persons, "nobody's sum is zero");
        assert_eq!(c.total, exact.values().sum::<f64>(), "|value| summed");
        let mut sums: Vec<f64> = exact.values().copied().collect();
        sums.sort_by(|a, b| b.total_cmp(a));
        for n in 1..=TOP_CONTRIBUTIONS {
            let bound: f64 = c.top.iter().take(n).sum();
            let largest: f64 = sums.iter().take(n).sum();
            assert!(bound >= largest, "n = {n}: {bound} bounds {largest}");
        }
        assert!(
            c.top[0] < sums[0] * 4.0 + 1.0,
            "a bound is a sum over four parts, not over everyone"
        );
    }

    /// In one ascending run every person is one entry: the cell is exact, down to who adds
    /// nothing. Over several parts, a zero in one may not be a zero in all, so who contributes
    /// is not known and the check must run again exactly.
    #[test]
    fn a_cell_of_one_run_is_exact_and_zeros_over_parts_are_unknown() {
        let mut one = ByPerson(CellGroups::new(2));
        cell_rows(
            &mut one,
            vec![Some(1), Some(1), Some(2), None, Some(3), Some(3)],
            &[
                vec![5.0, 4.0, 0.0, 700.0, 3.0, 3.0],
                vec![1.0, 1.0, 8.0, 0.0, 0.0, 0.0],
            ],
        );
        let (persons, sections) = evaluate_cell(&mut one, 0);
        assert_eq!(persons.iter().collect::<Vec<_>>(), [1, 2, 3]);
        let [first, second] = &sections[..] else {
            panic!("a section per value: {sections:?}");
        };
        assert_eq!(first.form, Form::Exact);
        assert_eq!(
            first.top,
            [700.0, 9.0, 6.0],
            "nobody's record is its own contributor"
        );
        assert_eq!(first.total, 715.0);
        assert_eq!(
            first.persons.iter().collect::<Vec<_>>(),
            [1, 3],
            "2 adds nothing"
        );
        assert_eq!(second.top, [8.0, 2.0]);
        assert_eq!(second.persons.iter().collect::<Vec<_>>(), [1, 2]);

        let mut parts = ByPerson(CellGroups::new(1));
        cell_rows(&mut parts, vec![Some(4), Some(5)], &[vec![0.0, 1.0]]);
        cell_rows(&mut parts, vec![Some(4)], &[vec![2.0]]);
        let (_, sections) = evaluate_cell(&mut parts, 0);
        assert_eq!(
            sections[0].form,
            Form::PersonsUnknown,
            "4 adds 2 in its second run"
        );
    }

    /// Where DataFusion skips partial aggregation, each row is handed on as a state of its
    /// own: rows of ascending persons still make one run, exact, not a part each.
    #[test]
    fn rows_handed_on_alone_join_the_run() {
        let cells = ByPerson(CellGroups::new(1));
        let persons: ArrayRef = Arc::new(UInt32Array::from(vec![
            Some(1),
            Some(1),
            None,
            Some(2),
            Some(3),
        ]));
        let values: ArrayRef = Arc::new(Float64Array::from(vec![2.0, 3.0, 9.0, 0.0, 4.0]));
        let states = cells
            .convert_to_state(&[persons, values], None)
            .expect("a state a row");
        let mut merged = ByPerson(CellGroups::new(1));
        merged.merge_batch(&states, &[0; 5], 1).expect("merge");
        let (persons, sections) = evaluate_cell(&mut merged, 0);
        assert_eq!(persons.iter().collect::<Vec<_>>(), [1, 2, 3]);
        let c = &sections[0];
        assert_eq!(c.form, Form::Exact, "one run");
        assert_eq!(
            c.top,
            [9.0, 5.0, 4.0],
            "1's rows summed; nobody's record its own"
        );
        assert_eq!(
            c.persons.iter().collect::<Vec<_>>(),
            [1, 3],
            "2 adds nothing"
        );
    }

    /// A state cut short fails the query rather than pass a smaller cell.
    #[test]
    fn a_cell_state_cut_short_is_refused() {
        let mut cells = ByPerson(CellGroups::new(1));
        cell_rows(&mut cells, vec![Some(1), Some(2)], &[vec![1.0, 2.0]]);
        let state = cells.state(EmitTo::All).expect("state");
        let bytes = state[0].as_binary::<i32>().value(0);
        for cut in [3, bytes.len() - 1] {
            let short: ArrayRef = Arc::new(arrow::array::BinaryArray::from(vec![&bytes[..cut]]));
            let mut merged = ByPerson(CellGroups::new(1));
            assert!(
                merged.merge_batch(&[short], &[0], 1).is_err(),
                "cut at {cut}"
            );
        }
    }
}
