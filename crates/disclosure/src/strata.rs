//! `niji_strata(key…)`: a cell's persons, facilities and totals from the strata of its rows
//! (see [`niji_store::Strata`]), where the shadow's rewrite has shown that every cell is a
//! union of whole strata (grouped and filtered on coded columns only). Which strata make a
//! cell, its grouping keys and filter tell when computed on the strata's own values (a few
//! thousand rows, at planning); the query itself reads nothing more than the researcher's SQL
//! does. The sets are built once a cell is final, from the strata's own.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, StructArray, UInt32Array};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::execution_props::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, LogicalTableSource, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::create_physical_expr;
use niji_store::{NO_FACILITY, Strata};
use roaring::{MultiOps, RoaringBitmap};

use crate::udaf::{
    CELL_CONTRIBUTIONS, CELL_PERSONS, CONTRIBUTIONS_FORM, Contributions, Form, append_tagged,
    encode_set,
};

pub const STRATA_FUNCTION: &str = "niji_strata";
/// The field of a `niji_strata` result holding the cell's facilities, as `niji_first_members` gives them.
pub const CELL_FACILITIES: &str = "facilities";
/// The strata's own numbers beside their values, while their keys are computed.
const STRATUM_NUMBER: &str = "__niji_stratum";

/// What `niji_strata` makes of a cell: its persons, up to `facility_cap` of its facilities, and
/// a contributions section for each of `values` (a stored column's totals and its ceiling).
#[derive(Debug)]
pub struct StrataCells {
    pub strata: Arc<Strata>,
    pub facility_cap: usize,
    pub values: Vec<(String, Vec<f64>)>,
}

/// The strata of each cell, by the cell's grouping keys in arrow's row form.
#[derive(Debug)]
pub struct KeyedStrata {
    /// What `niji_strata` takes: the keys' types, or one flag without GROUP BY.
    pub(crate) arg_types: Vec<DataType>,
    pub(crate) converter: RowConverter,
    pub(crate) strata_of: HashMap<Box<[u8]>, Vec<u32>>,
    /// An aggregation without GROUP BY: its one row may have no stratum at all.
    pub(crate) global: bool,
}

impl KeyedStrata {
    /// The strata of each cell of an aggregation over `strata`'s table grouped by `keys`
    /// (none: one cell of all rows) and filtered by `predicate`, both written over the columns
    /// of the table's scan (its stored columns by name), which has the `scanned` schema; the
    /// keys must come out as `key_types`, the types the aggregation gives them. None: they
    /// cannot be computed alike on the strata's values (the cells are then not taken from
    /// strata).
    pub fn compute(
        strata: &Strata,
        scanned: &Schema,
        predicate: Option<Expr>,
        keys: Vec<Expr>,
        key_types: &[DataType],
    ) -> Option<Self> {
        let global = keys.is_empty();
        let values = values_as_scanned(strata, scanned)?;
        let (keys, stratum) = keys_of_strata(values, predicate, keys).ok()?;
        if keys.len() != key_types.len().max(1)
            || (!global && keys.iter().zip(key_types).any(|(k, t)| k.data_type() != t))
        {
            return None;
        }
        let arg_types: Vec<DataType> = keys.iter().map(|k| k.data_type().clone()).collect();
        let converter =
            RowConverter::new(arg_types.iter().cloned().map(SortField::new).collect()).ok()?;
        let rows = converter.convert_columns(&keys).ok()?;
        let mut strata_of: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        for (row, &s) in rows.iter().zip(stratum.values()) {
            strata_of.entry(row.as_ref().into()).or_default().push(s);
        }
        Some(Self {
            arg_types,
            converter,
            strata_of,
            global,
        })
    }
}

/// The strata's values of the columns the scan has (a project's view may show only some),
/// typed as the scan gives them (text may be read as views), and each stratum's number.
fn values_as_scanned(strata: &Strata, scanned: &Schema) -> Option<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in strata
        .values
        .schema()
        .fields()
        .iter()
        .zip(strata.values.columns())
    {
        let Ok(scanned) = scanned.field_with_name(field.name()) else {
            continue;
        };
        let ty = scanned.data_type();
        columns.push(cast(column, ty).ok()?);
        fields.push(Field::new(field.name(), ty.clone(), true));
    }
    fields.push(Field::new(STRATUM_NUMBER, DataType::UInt32, false));
    columns.push(Arc::new(UInt32Array::from_iter_values(
        0..strata.len() as u32,
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()
}

/// `keys` (or one constant, for an aggregation without GROUP BY) of the strata `predicate`
/// keeps, computed as DataFusion computes them on rows (types coerced by its analyzer), and
/// those strata's numbers.
fn keys_of_strata(
    values: RecordBatch,
    predicate: Option<Expr>,
    mut keys: Vec<Expr>,
) -> Result<(Vec<ArrayRef>, UInt32Array)> {
    if keys.is_empty() {
        keys.push(datafusion::logical_expr::lit(true));
    }
    keys.push(datafusion::logical_expr::col(STRATUM_NUMBER));
    let schema: SchemaRef = values.schema();
    let mut plan =
        LogicalPlanBuilder::scan("strata", Arc::new(LogicalTableSource::new(schema)), None)?;
    if let Some(p) = predicate {
        plan = plan.filter(p)?;
    }
    let plan = plan.project(keys)?.build()?;
    let plan =
        crate::total::analyzer().execute_and_check(plan, &ConfigOptions::default(), |_, _| {})?;
    let LogicalPlan::Projection(projection) = &plan else {
        return exec_err!("the strata's keys are not a projection");
    };
    let props = ExecutionProps::new();
    let planning = PhysicalPlanningContext::default();
    let physical =
        |e: &Expr, input: &LogicalPlan| create_physical_expr(e, input.schema(), &props, &planning);
    let rows = match projection.input.as_ref() {
        LogicalPlan::Filter(f) => {
            let keep = physical(&f.predicate, &f.input)?
                .evaluate(&values)?
                .into_array(values.num_rows())?;
            let Some(keep) = keep.as_boolean_opt() else {
                return exec_err!("the strata's filter is not a condition");
            };
            filter_record_batch(&values, keep)?
        }
        LogicalPlan::TableScan(_) => values,
        _ => return exec_err!("the strata's keys read more than the strata"),
    };
    let mut keys = projection
        .expr
        .iter()
        .map(|e| {
            physical(e, &projection.input)?
                .evaluate(&rows)?
                .into_array(rows.num_rows())
        })
        .collect::<Result<Vec<_>>>()?;
    let stratum = keys
        .pop()
        .map(|s| s.as_primitive::<arrow::datatypes::UInt32Type>().clone());
    match stratum {
        Some(s) => Ok((keys, s)),
        None => exec_err!("the strata's numbers are lost"),
    }
}

pub fn strata_udf(cells: StrataCells, keyed: KeyedStrata) -> ScalarUDF {
    let signature = Signature::exact(keyed.arg_types.clone(), Volatility::Immutable);
    ScalarUDF::new_from_impl(StrataUdf {
        cells: Arc::new(cells),
        keyed: Arc::new(keyed),
        signature,
    })
}

#[derive(Debug)]
pub(crate) struct StrataUdf {
    pub(crate) cells: Arc<StrataCells>,
    pub(crate) keyed: Arc<KeyedStrata>,
    signature: Signature,
}

/// Two are the same function where they make the same cells of the same strata.
impl PartialEq for StrataUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.keyed, &other.keyed) && Arc::ptr_eq(&self.cells, &other.cells)
    }
}

impl Eq for StrataUdf {}

impl Hash for StrataUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.keyed).hash(state);
        Arc::as_ptr(&self.cells).hash(state);
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

impl ScalarUDFImpl for StrataUdf {
    fn name(&self) -> &str {
        STRATA_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(strata_fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let keys = ColumnarValue::values_to_arrays(&args.args)?;
        Ok(ColumnarValue::Array(self.cells_of(&keys)?))
    }
}

impl StrataUdf {
    /// The cells of grouping keys `keys`, one a row.
    fn cells_of(&self, keys: &[ArrayRef]) -> Result<ArrayRef> {
        let rows = self.keyed.converter.convert_columns(keys)?;
        let mut out = CellBuilder::default();
        for row in rows.iter() {
            match self.keyed.strata_of.get(row.as_ref()) {
                Some(strata) => self.cells.cell(strata, &mut out),
                // Every row of every stratum the filter keeps is in a cell of its keys: a cell
                // of no stratum is a cell of no row, which only an aggregation without GROUP
                // BY has.
                None if self.keyed.global => self.cells.cell(&[], &mut out),
                None => return exec_err!("a cell is not a union of strata"),
            }
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
}

pub const FACILITY_OF_FUNCTION: &str = "niji_facility_of";

/// `niji_facility_of(person)`: a facility of the person's stored rows
/// ([`Strata::a_facility`]), for groups of one person that read all of the person's rows: what
/// `niji_a_facility` would find in them, without reading a row's facility.
pub fn facility_of_udf(strata: Arc<Strata>) -> ScalarUDF {
    ScalarUDF::new_from_impl(FacilityOf {
        strata,
        signature: Signature::exact(vec![DataType::UInt32], Volatility::Immutable),
    })
}

#[derive(Debug)]
pub(crate) struct FacilityOf {
    pub(crate) strata: Arc<Strata>,
    signature: Signature,
}

impl PartialEq for FacilityOf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.strata, &other.strata)
    }
}

impl Eq for FacilityOf {}

impl Hash for FacilityOf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.strata).hash(state);
    }
}

impl ScalarUDFImpl for FacilityOf {
    fn name(&self) -> &str {
        FACILITY_OF_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let persons = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(persons) = persons
            .first()
            .and_then(|p| p.as_primitive_opt::<arrow::datatypes::UInt32Type>())
        else {
            return exec_err!("{FACILITY_OF_FUNCTION} takes a person index");
        };
        Ok(ColumnarValue::Array(Arc::new(facilities_of(
            &self.strata.a_facility,
            persons,
        ))))
    }
}

/// Each person's facility in `a_facility` (null: no person, or none).
fn facilities_of(a_facility: &[u32], persons: &UInt32Array) -> UInt32Array {
    persons
        .iter()
        .map(|p| {
            let f = *a_facility.get(p? as usize)?;
            (f != NO_FACILITY).then_some(f)
        })
        .collect()
}

impl StrataCells {
    fn cell(&self, strata: &[u32], out: &mut CellBuilder) {
        let all = &self.strata;
        let persons: RoaringBitmap = strata.iter().map(|&s| &all.persons[s as usize]).union();
        let mut facilities = RoaringBitmap::new();
        for &s in strata {
            if facilities.len() >= self.facility_cap as u64 {
                break;
            }
            facilities |= &all.facilities[s as usize];
        }
        let mut sections = vec![CONTRIBUTIONS_FORM];
        for (column, ceiling) in &self.values {
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
            facilities.iter().take(self.facility_cap),
        );
        out.contributions.append_value(sections);
    }
}

#[derive(Default)]
struct CellBuilder {
    persons: BinaryBuilder,
    facilities: BinaryBuilder,
    contributions: BinaryBuilder,
    scratch: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use datafusion::logical_expr::{col, lit, when};

    /// Three strata of (sex, setting).
    fn strata() -> Arc<Strata> {
        let set = |m: &[u32]| m.iter().copied().collect::<RoaringBitmap>();
        let text = |v: &[&str]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
        Arc::new(Strata {
            values: RecordBatch::try_from_iter([
                ("sex", text(&["1", "2", "1"])),
                ("setting", text(&["in", "in", "out"])),
            ])
            .expect("values"),
            persons: vec![set(&[1, 2]), set(&[2, 3]), set(&[9])],
            facilities: vec![set(&[10]), set(&[11, 12]), set(&[13])],
            totals: [("points".to_string(), vec![5.0, 7.0, 100.0])].into(),
            a_facility: Vec::new(),
        })
    }

    fn scanned() -> Schema {
        Schema::new(vec![
            Field::new("sex", DataType::Utf8View, true),
            Field::new("setting", DataType::Utf8View, true),
        ])
    }

    fn udf(predicate: Option<Expr>, keys: Vec<Expr>, types: &[DataType]) -> Option<StrataUdf> {
        let strata = strata();
        let keyed = KeyedStrata::compute(&strata, &scanned(), predicate, keys, types)?;
        Some(StrataUdf {
            cells: Arc::new(StrataCells {
                strata,
                facility_cap: 3,
                values: vec![("points".into(), vec![60.0, 40.0])],
            }),
            keyed: Arc::new(keyed),
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    fn cells(a: &ArrayRef) -> Vec<(Vec<u32>, u64, Contributions)> {
        let s = a.as_struct();
        let persons = s.column(0).as_binary::<i32>();
        let facilities = s.column(1).as_binary::<i32>();
        let contributions = s.column(2).as_binary::<i32>();
        (0..s.len())
            .map(|i| {
                let set = crate::udaf::decode_set(persons.value(i)).expect("a set");
                let places = crate::udaf::decode_set(facilities.value(i)).expect("facilities");
                let sections = Contributions::decode(contributions.value(i)).expect("sections");
                (set.iter().collect(), places.len(), sections[0].clone())
            })
            .collect()
    }

    fn keys(values: &[&str]) -> Vec<ArrayRef> {
        vec![Arc::new(arrow::array::StringViewArray::from(
            values.to_vec(),
        ))]
    }

    /// A cell's persons, facilities (up to the cap) and totals are its strata's, found by
    /// computing its keys on the strata's values (typed as the scan types them).
    #[test]
    fn a_cell_is_the_union_of_the_strata_of_its_keys() {
        let by_sex = udf(None, vec![col("sex")], &[DataType::Utf8View]).expect("keyed");
        let out = cells(&by_sex.cells_of(&keys(&["1", "2"])).expect("cells"));
        assert_eq!(out[0].0, [1, 2, 9]);
        assert_eq!(out[0].1, 2);
        assert_eq!(out[0].2.total, 105.0);
        assert_eq!(out[0].2.top, [60.0, 40.0]);
        assert_eq!(out[0].2.form, Form::Bounds);
        assert_eq!(out[1].0, [2, 3]);
        assert_eq!(out[1].1, 2);
        assert_eq!(out[1].2.total, 7.0);
        // A cell of keys no stratum has is not a union of strata: the query fails.
        assert!(by_sex.cells_of(&keys(&["9"])).is_err());
    }

    /// The filter and computed keys are evaluated on the strata as on rows.
    #[test]
    fn strata_the_filter_drops_are_in_no_cell() {
        let inpatients = Some(col("setting").eq(lit("in")));
        let group = when(col("sex").eq(lit("1")), lit("m")).otherwise(lit("f"));
        let f = udf(inpatients, vec![group.expect("case")], &[DataType::Utf8]).expect("keyed");
        let text = |v: &[&str]| vec![Arc::new(StringArray::from(v.to_vec())) as ArrayRef];
        let out = cells(&f.cells_of(&text(&["m", "f"])).expect("cells"));
        assert_eq!(out[0].0, [1, 2]);
        assert_eq!(out[1].0, [2, 3]);
    }

    /// A person's facility, null for no person, a person without one, or one beyond the
    /// table's persons.
    #[test]
    fn a_person_s_facility_is_looked_up() {
        let persons = UInt32Array::from(vec![Some(0), None, Some(1), Some(2), Some(9)]);
        let got = facilities_of(&[7, NO_FACILITY, 3], &persons);
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            [Some(7), None, None, Some(3), None]
        );
    }

    /// Keys the aggregation types otherwise than the strata's computation are not keyed (no
    /// cell is matched by values that merely print alike); an aggregation without GROUP BY is
    /// one cell of every stratum its filter keeps, or of none.
    #[test]
    fn other_types_are_refused_and_no_grouping_is_one_cell() {
        assert!(udf(None, vec![col("sex")], &[DataType::Utf8]).is_none());
        assert!(udf(None, vec![col("age")], &[DataType::Utf8View]).is_none());
        let all = udf(None, vec![], &[]).expect("keyed");
        let one = vec![Arc::new(arrow::array::BooleanArray::from(vec![true])) as ArrayRef];
        assert_eq!(cells(&all.cells_of(&one).expect("cell"))[0].0, [1, 2, 3, 9]);
        let none = udf(Some(col("setting").eq(lit("day"))), vec![], &[]).expect("keyed");
        assert!(cells(&none.cells_of(&one).expect("cell"))[0].0.is_empty());
    }
}
