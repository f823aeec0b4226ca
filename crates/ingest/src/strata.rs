//! A table's strata (see [`niji_store::Strata`]), numbered while the table is clustered: each
//! stratum gathers the persons, facilities and totals of |value| of its rows.

use std::sync::Arc;

use ahash::AHashMap as HashMap;
use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Schema, UInt32Type};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use niji_catalog::{ColumnType, DisclosureRole, Role, Sensitivity, Table};
use niji_store::{MAX_STRATA, NO_FACILITY, Strata};
use roaring::RoaringBitmap;

use crate::IngestError;
use crate::ceilings::summed_columns;

/// The columns of `table` its strata may be made of: stored coded columns (a code system, or
/// a flag), but for its period (a stratum a month would split every person's rows) and its
/// facility (too many values to be worth it).
pub(crate) fn coded_columns(table: &Table, stored: &Schema) -> Vec<String> {
    table
        .columns
        .iter()
        .filter(|c| c.code_system.is_some() || c.ty == ColumnType::Bool)
        .filter(|c| {
            !matches!(
                c.class,
                Sensitivity::DirectIdentifier | Sensitivity::Pseudonym
            )
        })
        .filter(|c| c.disclosure != Some(DisclosureRole::Facility))
        // Keys reach a view as project keys, not as stored: their values would not match.
        .filter(|c| c.role != Some(Role::RecordKey))
        .filter(|c| table.parent.as_ref().is_none_or(|l| l.key != c.name))
        .filter(|c| Some(c.name.as_str()) != table.period_column.as_deref())
        .filter(|c| stored.column_with_name(&c.name).is_some())
        .map(|c| c.name.clone())
        .collect()
}

/// The coded columns a table's strata are made of: the fewest-valued first, as long as the
/// product of their value counts (a bound on the strata they can make) stays within
/// [`MAX_STRATA`]. `distinct` is each candidate's count of values (nulls one of them).
pub(crate) fn choose(mut distinct: Vec<(String, usize)>) -> Vec<String> {
    distinct.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut bound = 1usize;
    let mut chosen = Vec::new();
    for (name, n) in distinct {
        match bound.checked_mul(n.max(1)) {
            Some(b) if b <= MAX_STRATA => {
                bound = b;
                chosen.push(name);
            }
            _ => break,
        }
    }
    chosen
}

/// Each candidate column's count of distinct values in `batch`, up to just past
/// [`MAX_STRATA`] (beyond it no count matters).
pub(crate) struct Distinct {
    columns: Vec<(String, ahash::AHashSet<Box<[u8]>>)>,
}

impl Distinct {
    pub(crate) fn new(columns: &[String]) -> Self {
        Self {
            columns: columns
                .iter()
                .map(|c| (c.clone(), ahash::AHashSet::new()))
                .collect(),
        }
    }

    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Result<(), IngestError> {
        for (name, seen) in &mut self.columns {
            let Some(values) = batch.column_by_name(name) else {
                continue;
            };
            if seen.len() > MAX_STRATA {
                continue;
            }
            let converter = RowConverter::new(vec![SortField::new(values.data_type().clone())])?;
            let rows = converter.convert_columns(std::slice::from_ref(values))?;
            for row in rows.iter() {
                if seen.len() > MAX_STRATA {
                    break;
                }
                if !seen.contains(row.as_ref()) {
                    seen.insert(row.as_ref().into());
                }
            }
        }
        Ok(())
    }

    pub(crate) fn merge(mut self, other: Self) -> Self {
        for ((_, mine), (_, theirs)) in self.columns.iter_mut().zip(other.columns) {
            mine.extend(theirs);
        }
        self
    }

    pub(crate) fn counts(self) -> Vec<(String, usize)> {
        self.columns
            .into_iter()
            .filter(|(_, seen)| !seen.is_empty())
            .map(|(name, seen)| (name, seen.len()))
            .collect()
    }
}

pub(crate) struct Stratifier {
    /// The stratified columns as stored.
    fields: Vec<Field>,
    converter: RowConverter,
    numbers: HashMap<Box<[u8]>, u32>,
    person: String,
    facility: Option<String>,
    persons: Vec<RoaringBitmap>,
    facilities: Vec<RoaringBitmap>,
    /// Numeric columns and each stratum's total of |value|.
    totals: Vec<(String, Vec<f64>)>,
    /// Per person index, the facility of the person's first row with one.
    a_facility: Vec<u32>,
}

impl Stratifier {
    /// Strata of `columns` of rows of `schema`, whose persons are `person` and facilities
    /// `facility`; totals of its numeric columns but `skip` (niji's own indexes). None: the
    /// table has no coded column to stratify by.
    pub(crate) fn new(
        schema: &Schema,
        columns: &[String],
        person: &str,
        facility: Option<&str>,
        skip: &[&str],
    ) -> Result<Option<Self>, IngestError> {
        if columns.is_empty() {
            return Ok(None);
        }
        let fields = columns
            .iter()
            .map(|c| Ok(schema.field_with_name(c)?.clone()))
            .collect::<Result<Vec<Field>, IngestError>>()?;
        let sort_fields = fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let totals = summed_columns(schema, person, skip)
            .into_iter()
            .map(|name| (name, Vec::new()))
            .collect();
        Ok(Some(Self {
            fields,
            converter: RowConverter::new(sort_fields)?,
            numbers: HashMap::new(),
            person: person.to_string(),
            facility: facility.map(str::to_string),
            persons: Vec::new(),
            facilities: Vec::new(),
            totals,
            a_facility: Vec::new(),
        }))
    }

    /// Adds the rows of `batch` to their strata.
    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Result<(), IngestError> {
        let columns = self
            .fields
            .iter()
            .map(|f| {
                batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                    IngestError::Internal(format!("a clustered batch has no column {}", f.name()))
                })
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let rows = self.converter.convert_columns(&columns)?;
        let mut strata = Vec::with_capacity(batch.num_rows());
        for row in rows.iter() {
            let next = self.numbers.len();
            let n = match self.numbers.get(row.as_ref()) {
                Some(&n) => n,
                None if next < MAX_STRATA => {
                    self.numbers.insert(row.as_ref().into(), next as u32);
                    self.persons.push(RoaringBitmap::new());
                    self.facilities.push(RoaringBitmap::new());
                    for (_, t) in &mut self.totals {
                        t.push(0.0);
                    }
                    next as u32
                }
                None => {
                    return Err(IngestError::Internal(format!(
                        "{} make more than {MAX_STRATA} strata",
                        self.columns().join(", ")
                    )));
                }
            };
            strata.push(n);
        }
        let indexes = |name: &str| -> Result<Option<UInt32Array>, IngestError> {
            match batch.column_by_name(name) {
                Some(c) if c.data_type() == &DataType::UInt32 => {
                    Ok(Some(c.as_primitive::<UInt32Type>().clone()))
                }
                Some(_) => Err(IngestError::Internal(format!("{name} is not an index"))),
                None => Ok(None),
            }
        };
        let persons = indexes(&self.person)?
            .ok_or_else(|| IngestError::Internal(format!("no person column {}", self.person)))?;
        let facilities = match &self.facility {
            Some(f) => indexes(f)?,
            None => None,
        };
        for (row, &s) in strata.iter().enumerate() {
            let s = s as usize;
            let person = persons.is_valid(row).then(|| persons.value(row));
            if let Some(p) = person {
                self.persons[s].insert(p);
            }
            let Some(f) = facilities
                .as_ref()
                .filter(|f| f.is_valid(row))
                .map(|f| f.value(row))
            else {
                continue;
            };
            self.facilities[s].insert(f);
            if let Some(p) = person.map(|p| p as usize) {
                if p >= self.a_facility.len() {
                    self.a_facility.resize(p + 1, NO_FACILITY);
                }
                if self.a_facility[p] == NO_FACILITY {
                    self.a_facility[p] = f;
                }
            }
        }
        for (name, totals) in &mut self.totals {
            let values = batch.column_by_name(name).ok_or_else(|| {
                IngestError::Internal(format!("a clustered batch has no column {name}"))
            })?;
            let values = cast(values, &DataType::Float64)?;
            for (v, &s) in values.as_primitive::<Float64Type>().iter().zip(&strata) {
                if let Some(v) = v {
                    totals[s as usize] += v.abs();
                }
            }
        }
        Ok(())
    }

    fn columns(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name().clone()).collect()
    }

    pub(crate) fn finish(self) -> Result<Strata, IngestError> {
        let mut numbered: Vec<(&u32, &Box<[u8]>)> =
            self.numbers.iter().map(|(row, n)| (n, row)).collect();
        numbered.sort_unstable();
        let parser = self.converter.parser();
        let values = self
            .converter
            .convert_rows(numbered.iter().map(|(_, row)| parser.parse(row)))?;
        let schema = Schema::new(
            self.fields
                .iter()
                .map(|f| f.clone().with_nullable(true))
                .collect::<Vec<_>>(),
        );
        Ok(Strata {
            values: RecordBatch::try_new(Arc::new(schema), values)?,
            persons: self.persons,
            facilities: self.facilities,
            totals: self.totals.into_iter().collect(),
            a_facility: self.a_facility,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    #[test]
    fn the_fewest_valued_columns_are_chosen_while_their_strata_stay_bounded() {
        let chosen = choose(vec![
            ("municipality".into(), 1_700),
            ("sex".into(), 2),
            ("prefecture".into(), 47),
            ("medical_area".into(), 335),
            ("setting".into(), 2),
        ]);
        assert_eq!(chosen, ["setting", "sex", "prefecture", "medical_area"]);
        assert!(choose(vec![("code".into(), MAX_STRATA + 1)]).is_empty());
    }

    #[test]
    fn each_stratum_gets_its_values_persons_facilities_and_totals() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("person_idx", DataType::UInt32, true),
            Field::new("facility_mark", DataType::UInt32, true),
            Field::new("sex", DataType::Utf8, true),
            Field::new("points", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt32Array::from(vec![
                    Some(1),
                    Some(1),
                    Some(2),
                    None,
                    Some(3),
                ])),
                Arc::new(UInt32Array::from(vec![
                    Some(7),
                    Some(8),
                    Some(7),
                    Some(9),
                    None,
                ])),
                Arc::new(StringArray::from(vec![
                    Some("1"),
                    Some("2"),
                    Some("1"),
                    None,
                    Some("1"),
                ])),
                Arc::new(Int64Array::from(vec![
                    Some(5),
                    Some(-3),
                    None,
                    Some(4),
                    Some(2),
                ])),
            ],
        )
        .expect("batch");
        let mut s = Stratifier::new(
            &schema,
            &["sex".into()],
            "person_idx",
            Some("facility_mark"),
            &["facility_mark"],
        )
        .expect("stratifier")
        .expect("a coded column");
        s.add(&batch).expect("added");
        let strata = s.finish().expect("strata");
        let sexes = strata.values.column(0).as_string::<i32>();
        assert_eq!(
            sexes.iter().collect::<Vec<_>>(),
            [Some("1"), Some("2"), None],
            "numbered as met"
        );
        let members = |b: &RoaringBitmap| b.iter().collect::<Vec<_>>();
        assert_eq!(members(&strata.persons[0]), [1, 2, 3]);
        assert_eq!(members(&strata.persons[2]), Vec::<u32>::new());
        assert_eq!(members(&strata.facilities[0]), [7]);
        assert_eq!(strata.totals["points"], [7.0, 3.0, 4.0]);
        assert!(!strata.totals.contains_key("facility_mark"));
        // Person 1's first facility; person 3's row has none.
        assert_eq!(strata.a_facility, [NO_FACILITY, 7, 7]);
    }
}
