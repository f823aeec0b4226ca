//! The aggregates niji adds to a researcher's plan: the set of persons (or facilities) behind
//! each group, as a roaring bitmap, and each person's contribution to a magnitude.
//!
//! `niji_set(x)` takes person indexes (UInt32), facility codes (strings, hashed to 20 bits:
//! a collision can only make a count smaller, so a rule errs towards suppressing) or the sets
//! of an inner aggregate (Binary), and returns the serialized union. It is computed in the same
//! pass as the researcher's own aggregates.
//!
//! `niji_contributions(person, value)` sums |value| per person and returns the total and the
//! largest contributions, for the dominance and p-percent rules.

type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::hash::Hasher;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt32Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use roaring::RoaringBitmap;

pub const SET_FUNCTION: &str = "niji_set";
pub const CONTRIBUTIONS_FUNCTION: &str = "niji_contributions";
/// Largest contributions kept per cell (the dominance rule's n is at most this).
pub const TOP_CONTRIBUTIONS: usize = 5;

pub fn set_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(NijiUdaf {
        kind: Kind::Set,
        signature: Signature::any(1, Volatility::Immutable),
    })
}

pub fn contributions_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(NijiUdaf {
        kind: Kind::Contributions,
        signature: Signature::exact(
            vec![DataType::UInt32, DataType::Float64],
            Volatility::Immutable,
        ),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Set,
    Contributions,
}

/// Both aggregates: a Binary result and a Binary state, computed by a groups accumulator.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NijiUdaf {
    kind: Kind,
    signature: Signature,
}

impl NijiUdaf {
    fn groups(&self) -> Box<dyn GroupsAccumulator + Sync> {
        match self.kind {
            Kind::Set => Box::new(SetGroups::default()),
            Kind::Contributions => Box::new(ContributionGroups::default()),
        }
    }
}

impl AggregateUDFImpl for NijiUdaf {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Set => SET_FUNCTION,
            Kind::Contributions => CONTRIBUTIONS_FUNCTION,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match (self.kind, args.first()) {
            (Kind::Contributions, _)
            | (
                Kind::Set,
                Some(
                    DataType::UInt32
                    | DataType::Binary
                    | DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View,
                ),
            ) => Ok(DataType::Binary),
            (Kind::Set, other) => exec_err!("{SET_FUNCTION} does not take {other:?}"),
        }
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[state]", args.name),
            DataType::Binary,
            false,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup(self.groups())))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self.groups())
    }
}

/// A set as the aggregate returns it: a serialized roaring bitmap, or, tagged with a leading
/// byte 0, members as little-endian u32 (what one row makes, cheaply, when the partial
/// aggregation hands rows on without grouping them).
pub fn decode_set(bytes: &[u8]) -> Result<RoaringBitmap> {
    match bytes.split_first() {
        // The state of a partition that saw no row.
        None => Ok(RoaringBitmap::new()),
        Some((&MEMBERS_TAG, members)) => Ok(members
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect()),
        Some(_) => RoaringBitmap::deserialize_from(bytes)
            .map_err(|e| datafusion::error::DataFusionError::Execution(format!("person set: {e}"))),
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

/// A cell's contributions: the total, the persons contributing anything, and the largest
/// per-person sums, largest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    pub total: f64,
    pub persons: u64,
    pub top: Vec<f64>,
}

impl Contributions {
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let values: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        match values.as_slice() {
            [total, persons, top @ ..] => Some(Self {
                total: *total,
                persons: *persons as u64,
                top: top.to_vec(),
            }),
            _ => None,
        }
    }
}

/// Facility codes hashed into 20 bits: a set of them then spans at most 16 roaring containers
/// (32-bit hashes would put each facility in a container of its own, and make every union
/// shift long container lists). Three facilities collide with a chance of about 3 in a
/// million, and a collision only makes a count smaller.
fn string_hash(s: &str) -> u32 {
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6e69_6a69, 0x6661_6369);
    h.write(s.as_bytes());
    (h.finish() as u32) & 0x000f_ffff
}

/// One group's set: members arrive in any order, so they are buffered and added sorted, many
/// at a time (a roaring bitmap takes sorted runs cheaply and single random inserts dearly).
#[derive(Debug, Default)]
struct Group {
    set: RoaringBitmap,
    pending: Vec<u32>,
}

/// Members buffered per group before they are added to its bitmap.
const PENDING: usize = 4096;
/// Incoming sets up to this size are added member by member.
const SMALL_SET: u64 = 64;

impl Group {
    fn push(&mut self, member: u32) {
        self.pending.push(member);
        if self.pending.len() >= PENDING {
            self.flush();
        }
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
        self.set
    }

    /// Adds row `row` of `values`.
    fn add(&mut self, values: &ArrayRef, row: usize) -> Result<()> {
        if values.is_null(row) {
            return Ok(());
        }
        match values.data_type() {
            DataType::UInt32 => self.push(values.as_primitive::<UInt32Type>().value(row)),
            DataType::Binary => {
                let bytes = values.as_binary::<i32>().value(row);
                match bytes.split_first() {
                    Some((&MEMBERS_TAG, members)) => {
                        for c in members.chunks_exact(4) {
                            self.push(u32::from_le_bytes(c.try_into().unwrap_or_default()));
                        }
                    }
                    _ => self.union(decode_set(bytes)?),
                }
            }
            DataType::Utf8 => self.push(string_hash(values.as_string::<i32>().value(row))),
            DataType::LargeUtf8 => self.push(string_hash(values.as_string::<i64>().value(row))),
            DataType::Utf8View => self.push(string_hash(values.as_string_view().value(row))),
            other => return exec_err!("{SET_FUNCTION} does not take {other}"),
        }
        Ok(())
    }
}

fn selected(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
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

impl SetGroups {
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let groups = emit_to.take_needed(&mut self.groups);
        let mut out = BinaryBuilder::with_capacity(groups.len(), 0);
        for group in groups {
            out.append_value(encode_set(&group.finish()));
        }
        self.added = self
            .groups
            .iter()
            .map(|g| g.set.len() as usize + g.pending.len())
            .sum();
        Arc::new(out.finish())
    }
}

impl GroupsAccumulator for SetGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        grow(&mut self.groups, total_num_groups);
        let values = &values[0];
        if let (DataType::UInt32, None) = (values.data_type(), opt_filter) {
            // The common case, without per-row dispatch.
            let ids = values.as_primitive::<UInt32Type>();
            for (row, &g) in group_indices.iter().enumerate() {
                if ids.is_valid(row) {
                    self.groups[g].push(ids.value(row));
                }
            }
        } else {
            for (row, &g) in group_indices.iter().enumerate() {
                if selected(opt_filter, row) {
                    self.groups[g].add(values, row)?;
                }
            }
        }
        self.added += group_indices.len();
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        grow(&mut self.groups, total_num_groups);
        let sets = &values[0];
        for (row, &g) in group_indices.iter().enumerate() {
            self.groups[g].add(sets, row)?;
        }
        self.added += group_indices.len();
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = &values[0];
        let mut out = BinaryBuilder::with_capacity(values.len(), values.len() * 5);
        for row in 0..values.len() {
            let mut one = Group::default();
            if selected(opt_filter, row) {
                one.add(values, row)?;
            }
            let members = one.finish();
            let mut bytes = Vec::with_capacity(1 + 4 * members.len() as usize);
            bytes.push(MEMBERS_TAG);
            for member in &members {
                bytes.extend_from_slice(&member.to_le_bytes());
            }
            out.append_value(bytes);
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Group>() + 4 * self.added
    }
}

/// Records of no identified person (no ID5) still belong to someone: each contributes as a
/// person of its own, under a key with this bit set (person indexes stay below it). Keys are
/// numbered per accumulator, so two such records may share one after a merge; that only makes
/// a contribution larger, and the rules stricter. They are never counted as persons.
const ANONYMOUS: u32 = 0x8000_0000;

/// Per group, each person's sum of |value|.
#[derive(Debug, Default)]
struct ContributionGroups {
    sums: Vec<HashMap<u32, f64>>,
    entries: usize,
    anonymous: u32,
}

/// The contributor of a row: its person, or a fresh anonymous key.
fn contributor(persons: &arrow::array::UInt32Array, row: usize, next: &mut u32) -> u32 {
    if persons.is_valid(row) {
        persons.value(row)
    } else {
        *next = next.wrapping_add(1);
        ANONYMOUS | (*next & !ANONYMOUS)
    }
}

impl ContributionGroups {
    fn add(&mut self, g: usize, person: u32, value: f64) {
        let sums = &mut self.sums[g];
        let before = sums.len();
        *sums.entry(person).or_insert(0.0) += value.abs();
        self.entries += sums.len() - before;
    }

    /// Per group: pairs (person, sum) as little-endian bytes.
    fn state_array(groups: &[HashMap<u32, f64>]) -> ArrayRef {
        let mut out = BinaryBuilder::with_capacity(groups.len(), 0);
        for sums in groups {
            let mut bytes = Vec::with_capacity(sums.len() * 12);
            for (p, v) in sums {
                bytes.extend_from_slice(&p.to_le_bytes());
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            out.append_value(bytes);
        }
        Arc::new(out.finish())
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<HashMap<u32, f64>> {
        let taken = emit_to.take_needed(&mut self.sums);
        self.entries = self.sums.iter().map(HashMap::len).sum();
        taken
    }
}

impl GroupsAccumulator for ContributionGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        grow(&mut self.sums, total_num_groups);
        let persons = values[0].as_primitive::<UInt32Type>();
        let amounts = values[1].as_primitive::<Float64Type>();
        for (row, &g) in group_indices.iter().enumerate() {
            if selected(opt_filter, row) && amounts.is_valid(row) {
                let person = contributor(persons, row, &mut self.anonymous);
                self.add(g, person, amounts.value(row));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = self.take(emit_to);
        let mut out = BinaryBuilder::with_capacity(groups.len(), 0);
        for sums in groups {
            let total: f64 = sums.values().sum();
            let persons = sums
                .iter()
                .filter(|(p, v)| *p & ANONYMOUS == 0 && **v != 0.0)
                .count() as f64;
            let mut top: Vec<f64> = sums.into_values().filter(|v| *v != 0.0).collect();
            top.sort_by(|a, b| b.total_cmp(a));
            top.truncate(TOP_CONTRIBUTIONS);
            let mut bytes = total.to_le_bytes().to_vec();
            bytes.extend_from_slice(&persons.to_le_bytes());
            for v in top {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            out.append_value(bytes);
        }
        Ok(Arc::new(out.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = self.take(emit_to);
        Ok(vec![Self::state_array(&groups)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        grow(&mut self.sums, total_num_groups);
        let states = values[0].as_binary::<i32>();
        for (row, &g) in group_indices.iter().enumerate() {
            if states.is_valid(row) {
                for pair in states.value(row).chunks_exact(12) {
                    let (p, v) = pair.split_at(4);
                    let person = u32::from_le_bytes(p.try_into().unwrap_or_default());
                    let value = f64::from_le_bytes(v.try_into().unwrap_or_default());
                    self.add(g, person, value);
                }
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let persons = values[0].as_primitive::<UInt32Type>();
        let amounts = values[1].as_primitive::<Float64Type>();
        // Each row is a group of its own here: one anonymous key serves them all.
        let groups: Vec<HashMap<u32, f64>> = (0..persons.len())
            .map(|row| {
                let mut m = HashMap::default();
                if selected(opt_filter, row) && amounts.is_valid(row) {
                    m.insert(contributor(persons, row, &mut 0), amounts.value(row).abs());
                }
                m
            })
            .collect();
        Ok(vec![Self::state_array(&groups)])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * std::mem::size_of::<HashMap<u32, f64>>() + self.entries * 24
    }
}

/// A groups accumulator used for an aggregate without GROUP BY (one group).
struct OneGroup(Box<dyn GroupsAccumulator + Sync>);

impl std::fmt::Debug for OneGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneGroup")
    }
}

impl Accumulator for OneGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; rows], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let array = self.0.evaluate(EmitTo::All)?;
        if array.is_empty() {
            // No row reached this group: the empty set.
            return Ok(ScalarValue::Binary(Some(encode_set(&RoaringBitmap::new()))));
        }
        ScalarValue::try_from_array(&array, 0)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let arrays = self.0.state(EmitTo::All)?;
        arrays
            .iter()
            .map(|a| {
                if a.is_empty() {
                    Ok(ScalarValue::Binary(Some(Vec::new())))
                } else {
                    ScalarValue::try_from_array(a, 0)
                }
            })
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
    fn sets_union_across_partial_states_and_count_distinct_persons() {
        let mut a = SetGroups::default();
        let persons: ArrayRef = Arc::new(UInt32Array::from(vec![1, 2, 2, 3, 9]));
        a.update_batch(&[persons], &[0, 0, 1, 1, 1], None, 2)
            .expect("update");
        let mut b = SetGroups::default();
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
        let mut a = SetGroups::default();
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
    fn contributions_sum_per_person_and_keep_the_largest() {
        let mut a = ContributionGroups::default();
        let persons: ArrayRef = Arc::new(UInt32Array::from(vec![1, 1, 2, 3, 4]));
        let values: ArrayRef = Arc::new(Float64Array::from(vec![10.0, 5.0, -3.0, 1.0, 0.0]));
        a.update_batch(&[persons, values], &[0, 0, 0, 0, 0], None, 1)
            .expect("update");
        let state = a.state(EmitTo::All).expect("state");
        let mut b = ContributionGroups::default();
        b.merge_batch(&state, &[0], 1).expect("merge");
        let out = b.evaluate(EmitTo::All).expect("evaluate");
        let c = Contributions::decode(out.as_binary::<i32>().value(0)).expect("decode");
        assert_eq!(c.total, 19.0);
        assert_eq!(c.persons, 3, "person 4 contributed nothing");
        assert_eq!(c.top, [15.0, 3.0, 1.0]);
    }

    #[test]
    fn records_of_nobody_identified_dominate_but_are_no_persons() {
        let mut a = ContributionGroups::default();
        let persons: ArrayRef = Arc::new(UInt32Array::from(vec![Some(1), None, Some(2), None]));
        let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 500.0, 2.0, 300.0]));
        a.update_batch(&[persons, values], &[0, 0, 0, 0], None, 1)
            .expect("update");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        let c = Contributions::decode(out.as_binary::<i32>().value(0)).expect("decode");
        assert_eq!(c.total, 803.0, "their values are in the total");
        assert_eq!(
            c.top,
            [500.0, 300.0, 2.0, 1.0],
            "each record its own contributor"
        );
        assert_eq!(c.persons, 2, "but nobody they could be counted as");
    }
}
