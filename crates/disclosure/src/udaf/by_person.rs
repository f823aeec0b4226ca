//! The groups accumulator over any accumulator of contributions, and the one-group
//! accumulator for aggregates without groups.

use super::*;

/// Accumulators of contributions per group ([`ContributionGroups`], [`CellGroups`],
/// [`BoundedCellGroups`]): how they
/// take a row (its group, its person (None: no ID5), whether it has any value, and its k
/// values, 0 for a null one), grow, merge a state and hand on what they hold; [`ByPerson`]
/// makes a DataFusion groups accumulator of either.
pub(crate) trait Contributing: Send + Sync + Sized + 'static {
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
pub(crate) struct ByPerson<T>(pub(crate) T);

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
pub(crate) fn add_contribution_rows(
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
pub(crate) struct SingleGroup(pub(crate) Box<dyn GroupsAccumulator + Sync>);

impl std::fmt::Debug for SingleGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SingleGroup")
    }
}

impl SingleGroup {
    /// Its one group exists before any row arrives, so that evaluating an empty input gives
    /// each aggregate's own empty value (an empty set, zero contributions), not a set for all.
    pub(crate) fn new(mut groups: Box<dyn GroupsAccumulator + Sync>) -> Result<Self> {
        let none: ArrayRef = Arc::new(arrow::array::BinaryArray::from(Vec::<&[u8]>::new()));
        groups.merge_batch(&[none], &[], 1)?;
        Ok(Self(groups))
    }
}

impl Accumulator for SingleGroup {
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
