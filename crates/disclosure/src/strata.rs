//! `niji_strata(stratum)`: a cell's persons, facilities and totals from the strata of its rows
//! (see [`niji_catalog::Strata`]), where the shadow's rewrite has shown that every cell is a
//! union of whole strata (grouped and filtered on coded columns only). A row costs one store
//! into an array of a few thousand strata; nothing of its person is read. The sets are built
//! once a cell is final, from the strata's own.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, UInt32Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use niji_catalog::Strata;
use roaring::{MultiOps, RoaringBitmap};

use crate::sets::{
    CELL_CONTRIBUTIONS, CELL_PERSONS, CONTRIBUTIONS_FORM, Contributions, Form, OneGroup,
    append_tagged, encode_set, selected, tagged_members,
};

pub const STRATA_FUNCTION: &str = "niji_strata";
/// The field of a `niji_strata` result holding the cell's facilities, as `niji_few` gives them.
pub const CELL_FACILITIES: &str = "facilities";

/// What `niji_strata` makes of a cell: its persons, up to `facility_cap` of its facilities, and
/// a contributions section for each of `values` (a stored column's totals and its ceiling).
#[derive(Debug)]
pub struct StrataCells {
    pub strata: Arc<Strata>,
    pub facility_cap: usize,
    pub values: Vec<(String, Vec<f64>)>,
}

pub fn strata_udaf(cells: StrataCells) -> AggregateUDF {
    AggregateUDF::new_from_impl(StrataUdaf {
        cells: Arc::new(cells),
        signature: Signature::exact(vec![DataType::UInt32], Volatility::Immutable),
    })
}

#[derive(Debug)]
struct StrataUdaf {
    cells: Arc<StrataCells>,
    signature: Signature,
}

/// Two are the same function where they read the same strata alike.
impl PartialEq for StrataUdaf {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.cells, &other.cells);
        Arc::ptr_eq(&a.strata, &b.strata)
            && a.facility_cap == b.facility_cap
            && a.values.len() == b.values.len()
            && a.values.iter().zip(&b.values).all(|((x, cx), (y, cy))| {
                x == y
                    && cx.len() == cy.len()
                    && cx.iter().zip(cy).all(|(p, q)| p.to_bits() == q.to_bits())
            })
    }
}

impl Eq for StrataUdaf {}

impl Hash for StrataUdaf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.cells.strata).hash(state);
        self.cells.facility_cap.hash(state);
        for (name, ceiling) in &self.cells.values {
            name.hash(state);
            ceiling.iter().for_each(|c| c.to_bits().hash(state));
        }
    }
}

fn strata_fields() -> Fields {
    vec![
        Field::new(CELL_PERSONS, DataType::Binary, false),
        Field::new(CELL_FACILITIES, DataType::Binary, false),
        Field::new(CELL_CONTRIBUTIONS, DataType::Binary, false),
    ]
    .into()
}

impl AggregateUDFImpl for StrataUdaf {
    fn name(&self) -> &str {
        STRATA_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(strata_fields()))
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

    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup::new(Box::new(self.groups()))?))
    }

    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(self.groups()))
    }
}

impl StrataUdaf {
    fn groups(&self) -> StrataGroups {
        StrataGroups {
            cells: self.cells.clone(),
            group_of: vec![NO_GROUP; self.cells.strata.len()],
            groups: 0,
            split: false,
        }
    }
}

/// The strata of a batch of stored rows: every row has one.
fn stored_strata(values: &ArrayRef) -> Result<&arrow::array::UInt32Array> {
    match values.as_primitive_opt::<UInt32Type>() {
        Some(strata) if strata.null_count() == 0 => Ok(strata),
        Some(_) => exec_err!("a stored row has no stratum"),
        None => exec_err!("{STRATA_FUNCTION} takes a stratum"),
    }
}

/// A stratum no row has brought yet.
const NO_GROUP: u32 = u32::MAX;

#[derive(Debug)]
struct StrataGroups {
    cells: Arc<StrataCells>,
    /// Per stratum, the group its rows are in.
    group_of: Vec<u32>,
    /// Groups so far (a group of no rows has no stratum: an aggregation without GROUP BY).
    groups: usize,
    /// A stratum was met in two groups of this accumulator: cells are not unions of strata
    /// after all, and the query fails rather than count a stratum in one of them only. Only a
    /// guard: strata in groups of other partitions, or emitted already, are not compared; that
    /// cells are unions of whole strata rests on the rewrite's proof.
    split: bool,
}

impl StrataGroups {
    #[inline]
    fn assign(&mut self, stratum: u32, group: usize) -> Result<()> {
        let Some(at) = self.group_of.get_mut(stratum as usize) else {
            return exec_err!("stratum {stratum} is not one of the table's");
        };
        let group = group as u32;
        self.split |= *at != NO_GROUP && *at != group;
        *at = group;
        Ok(())
    }

    /// Each emitted group's strata, ascending; the groups left are renumbered from 0.
    fn take(&mut self, emit_to: EmitTo) -> Result<Vec<Vec<u32>>> {
        if self.split {
            return exec_err!("a stratum fell in two cells: its cells are not unions of strata");
        }
        let n = match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n.min(self.groups),
        };
        self.groups -= n;
        let mut out = vec![Vec::new(); n];
        for (stratum, g) in self.group_of.iter_mut().enumerate() {
            if *g == NO_GROUP {
                continue;
            }
            if (*g as usize) < n {
                out[*g as usize].push(stratum as u32);
                *g = NO_GROUP;
            } else {
                *g -= n as u32;
            }
        }
        Ok(out)
    }

    fn cell(&self, strata: &[u32], out: &mut CellBuilder) {
        let all = &self.cells.strata;
        let persons: RoaringBitmap = strata.iter().map(|&s| &all.persons[s as usize]).union();
        let mut facilities = RoaringBitmap::new();
        for &s in strata {
            if facilities.len() >= self.cells.facility_cap as u64 {
                break;
            }
            facilities |= &all.facilities[s as usize];
        }
        let mut sections = vec![CONTRIBUTIONS_FORM];
        for (column, ceiling) in &self.cells.values {
            let total = all
                .totals
                .get(column)
                .map_or(f64::NAN, |t| strata.iter().map(|&s| t[s as usize]).sum());
            // Every person with a row contributes: a ceiled sum's column has no zero.
            Contributions::encode_section(Form::Bounds, total, ceiling, &persons, &mut sections);
        }
        out.persons.append_value(encode_set(&persons));
        append_tagged(
            &mut out.facilities,
            &mut out.scratch,
            facilities.iter().take(self.cells.facility_cap),
        );
        out.contributions.append_value(sections);
    }
}

struct CellBuilder {
    persons: BinaryBuilder,
    facilities: BinaryBuilder,
    contributions: BinaryBuilder,
    scratch: Vec<u8>,
}

impl GroupsAccumulator for StrataGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups = self.groups.max(total_num_groups);
        let strata = stored_strata(&values[0])?.values();
        for (row, (&s, &group)) in strata.iter().zip(group_indices).enumerate() {
            if selected(opt_filter, row) {
                self.assign(s, group)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = self.take(emit_to)?;
        let mut out = CellBuilder {
            persons: BinaryBuilder::new(),
            facilities: BinaryBuilder::new(),
            contributions: BinaryBuilder::new(),
            scratch: Vec::new(),
        };
        for strata in &groups {
            self.cell(strata, &mut out);
        }
        Ok(Arc::new(StructArray::try_new(
            strata_fields(),
            vec![
                Arc::new(out.persons.finish()),
                Arc::new(out.facilities.finish()),
                Arc::new(out.contributions.finish()),
            ],
            None,
        )?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = self.take(emit_to)?;
        let mut out = BinaryBuilder::with_capacity(groups.len(), 0);
        let mut scratch = Vec::new();
        for strata in groups {
            append_tagged(&mut out, &mut scratch, strata);
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups = self.groups.max(total_num_groups);
        let Some(states) = values[0].as_binary_opt::<i32>() else {
            return exec_err!("{STRATA_FUNCTION} merges its own states");
        };
        for (row, &group) in group_indices.iter().enumerate() {
            let Some(strata) = tagged_members(states.value(row)) else {
                return exec_err!("{STRATA_FUNCTION} merges its own states");
            };
            for s in strata {
                self.assign(s, group)?;
            }
        }
        Ok(())
    }

    /// Each row a group of its own: its stratum alone.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let strata = stored_strata(&values[0])?.values();
        let mut out = BinaryBuilder::with_capacity(strata.len(), 5 * strata.len());
        let mut scratch = Vec::new();
        for (row, &s) in strata.iter().enumerate() {
            let chosen = selected(opt_filter, row).then_some(s);
            append_tagged(&mut out, &mut scratch, chosen);
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn size(&self) -> usize {
        self.group_of.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::UInt32Array;

    fn strata() -> Arc<Strata> {
        let set = |m: &[u32]| m.iter().copied().collect::<RoaringBitmap>();
        Arc::new(Strata {
            columns: vec!["sex".into()],
            persons: vec![set(&[1, 2]), set(&[2, 3]), set(&[9])],
            facilities: vec![set(&[10]), set(&[11, 12]), set(&[13])],
            totals: [("points".to_string(), vec![5.0, 7.0, 100.0])].into(),
        })
    }

    fn accumulator() -> StrataGroups {
        StrataUdaf {
            cells: Arc::new(StrataCells {
                strata: strata(),
                facility_cap: 3,
                values: vec![("points".into(), vec![60.0, 40.0])],
            }),
            signature: Signature::exact(vec![DataType::UInt32], Volatility::Immutable),
        }
        .groups()
    }

    fn cells(a: &ArrayRef) -> Vec<(Vec<u32>, Vec<u8>, Contributions)> {
        let s = a.as_struct();
        let persons = s.column(0).as_binary::<i32>();
        let facilities = s.column(1).as_binary::<i32>();
        let contributions = s.column(2).as_binary::<i32>();
        (0..s.len())
            .map(|i| {
                let set = crate::sets::decode_set(persons.value(i)).expect("a set");
                let sections = Contributions::decode(contributions.value(i)).expect("sections");
                (
                    set.iter().collect(),
                    facilities.value(i).to_vec(),
                    sections[0].clone(),
                )
            })
            .collect()
    }

    /// Two partitions' partial states merge into cells that are unions of their strata.
    #[test]
    fn a_cell_is_the_union_of_its_strata() {
        let mut left = accumulator();
        let rows: ArrayRef = Arc::new(UInt32Array::from(vec![0, 0, 2]));
        left.update_batch(&[rows], &[0, 0, 1], None, 2)
            .expect("rows");
        let mut right = accumulator();
        let rows: ArrayRef = Arc::new(UInt32Array::from(vec![1]));
        right.update_batch(&[rows], &[0], None, 1).expect("rows");
        let mut last = accumulator();
        for partial in [&mut left, &mut right] {
            let state = partial.state(EmitTo::All).expect("state");
            let groups: Vec<usize> = (0..state[0].len()).collect();
            last.merge_batch(&state, &groups, groups.len())
                .expect("merged");
        }
        let out = cells(&last.evaluate(EmitTo::All).expect("cells"));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, [1, 2, 3]);
        assert_eq!(out[0].2.total, 12.0);
        assert_eq!(out[0].2.top, [60.0, 40.0]);
        assert_eq!(out[0].2.form, Form::Bounds);
        assert_eq!(out[1].0, [9]);
        assert_eq!(out[1].2.total, 100.0);
        // Facilities as niji_few gives them: tagged, up to the cap.
        let facilities = |bytes: &[u8]| crate::sets::decode_set(bytes).expect("facilities").len();
        assert_eq!(facilities(&out[0].1), 3);
        assert_eq!(facilities(&out[1].1), 1);
    }

    /// A stratum whose rows fall in two groups fails the query.
    #[test]
    fn a_stratum_split_between_cells_is_refused() {
        let mut a = accumulator();
        let rows: ArrayRef = Arc::new(UInt32Array::from(vec![0, 0]));
        a.update_batch(&[rows], &[0, 1], None, 2).expect("rows");
        assert!(a.evaluate(EmitTo::All).is_err());
        let mut b = accumulator();
        let rows: ArrayRef = Arc::new(UInt32Array::from(vec![7]));
        assert!(b.update_batch(&[rows], &[0], None, 1).is_err());
    }

    /// Emitting the first groups renumbers the rest, as DataFusion expects.
    #[test]
    fn emitting_the_first_groups_keeps_the_others() {
        let mut a = accumulator();
        let rows: ArrayRef = Arc::new(UInt32Array::from(vec![0, 1, 2]));
        a.update_batch(&[rows], &[0, 1, 2], None, 3).expect("rows");
        let first = cells(&a.evaluate(EmitTo::First(1)).expect("first"));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, [1, 2]);
        let rest = cells(&a.evaluate(EmitTo::All).expect("rest"));
        assert_eq!(
            rest.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
            [vec![2, 3], vec![9]]
        );
    }
}
