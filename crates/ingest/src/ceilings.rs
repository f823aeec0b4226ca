//! Each person's total of every numeric column over a table, summed while the table is
//! clustered (a fiscal year at a time, each in person order), and the largest of them: the
//! [`Ceiling`]s disclosure control bounds a cell's largest contributions by.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Schema, UInt32Type};
use arrow::record_batch::RecordBatch;
use niji_store::Ceiling;

use crate::IngestError;

/// Totals kept per column: as many as a check sums (disclosure control's largest n).
const KEPT: usize = 5;

/// Sums in another order (a cell's, a partition's) may round past a total by a few units in the
/// last place: a ceiling is raised by far more than that.
const ROUNDING_MARGIN: f64 = 1e-9;

pub(crate) struct Totals {
    person: String,
    /// Persons summed so far, ascending; each column's totals are in the same order.
    persons: Vec<u32>,
    columns: Vec<ColumnTotals>,
}

struct ColumnTotals {
    name: String,
    totals: Vec<f64>,
    /// The largest |value| of rows of no person, each a contributor of its own.
    anonymous: Vec<f64>,
    zeros: bool,
    /// A NaN or an infinity: no ceiling bounds its sums.
    unbounded: bool,
}

impl Totals {
    /// Totals of the numeric columns of `schema` but `person` and `skip` (the indexes niji
    /// stores for itself), by `person`.
    pub(crate) fn new(schema: &Schema, person: &str, skip: &[&str]) -> Self {
        let columns = summed_columns(schema, person, skip)
            .into_iter()
            .map(|name| ColumnTotals {
                name,
                totals: Vec::new(),
                anonymous: Vec::new(),
                zeros: false,
                unbounded: false,
            })
            .collect();
        Self {
            person: person.to_string(),
            persons: Vec::new(),
            columns,
        }
    }

    /// Adds rows sorted by person (rows of no person last), whose persons were in no batch
    /// added before: each person's rows are one run.
    pub(crate) fn add_sorted(&mut self, batch: &RecordBatch) -> Result<(), IngestError> {
        let persons = batch
            .column_by_name(&self.person)
            .filter(|c| c.data_type() == &DataType::UInt32)
            .ok_or_else(|| IngestError::Internal(format!("{} is not a person index", self.person)))?
            .as_primitive::<UInt32Type>();
        // (person, first row, end) of each run; rows of no person apart.
        let mut runs: Vec<(u32, usize, usize)> = Vec::new();
        let mut anonymous = Vec::new();
        for row in 0..batch.num_rows() {
            if persons.is_null(row) {
                anonymous.push(row);
                continue;
            }
            let p = persons.value(row);
            match runs.last_mut() {
                Some((last, _, end)) if *last == p && *end == row => *end += 1,
                Some((last, _, _)) if *last >= p => {
                    return Err(IngestError::Internal(
                        "per-person totals were given rows out of person order".into(),
                    ));
                }
                _ => runs.push((p, row, row + 1)),
            }
        }
        let (merged, from) = merge_persons(&self.persons, runs.iter().map(|r| r.0));
        for column in &mut self.columns {
            let values = batch.column_by_name(&column.name).ok_or_else(|| {
                IngestError::Internal(format!("a clustered batch has no column {}", column.name))
            })?;
            let values = cast(values, &DataType::Float64)?;
            let values = values.as_primitive::<Float64Type>();
            let magnitude = |row: usize| -> f64 {
                if values.is_null(row) {
                    0.0
                } else {
                    values.value(row).abs()
                }
            };
            for v in values.iter().flatten() {
                column.zeros |= v == 0.0;
                column.unbounded |= !v.is_finite();
            }
            for &row in &anonymous {
                keep_largest(&mut column.anonymous, magnitude(row));
            }
            let sums: Vec<f64> = runs
                .iter()
                .map(|&(_, from, to)| (from..to).map(magnitude).sum())
                .collect();
            column.totals = from
                .iter()
                .map(|&(old, new)| {
                    old.map_or(0.0, |o| column.totals[o]) + new.map_or(0.0, |n| sums[n])
                })
                .collect();
        }
        self.persons = merged;
        Ok(())
    }

    /// The ceiling of each column whose values are all finite.
    pub(crate) fn finish(self) -> BTreeMap<String, Ceiling> {
        self.columns
            .into_iter()
            .filter(|c| !c.unbounded)
            .map(|c| {
                let mut largest = c.anonymous;
                for &t in &c.totals {
                    keep_largest(&mut largest, t);
                }
                let largest = largest
                    .into_iter()
                    .map(|t| t * (1.0 + ROUNDING_MARGIN))
                    .collect();
                (
                    c.name,
                    Ceiling {
                        largest,
                        zeros: c.zeros,
                    },
                )
            })
            .collect()
    }
}

/// The numeric columns of `schema` whose values ingest sums, but `person` and `skip` (the
/// indexes niji stores for itself).
pub(crate) fn summed_columns(schema: &Schema, person: &str, skip: &[&str]) -> Vec<String> {
    schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_numeric())
        .filter(|f| f.name() != person && !skip.contains(&f.name().as_str()))
        .map(|f| f.name().clone())
        .collect()
}

/// Where a person of a merged list is in the old list and in the new one.
type Found = (Option<usize>, Option<usize>);

/// The union of two ascending lists of persons, and for each of its members where it is in
/// either.
fn merge_persons(old: &[u32], new: impl Iterator<Item = u32>) -> (Vec<u32>, Vec<Found>) {
    let mut merged = Vec::with_capacity(old.len());
    let mut from = Vec::with_capacity(old.len());
    let mut new = new.enumerate().peekable();
    let mut old_at = 0;
    loop {
        let next_old = old.get(old_at).copied();
        let next_new = new.peek().map(|&(_, p)| p);
        let (person, o, n) = match (next_old, next_new) {
            (None, None) => break,
            (Some(a), Some(b)) if a == b => (a, Some(old_at), new.next().map(|(i, _)| i)),
            (Some(a), Some(b)) if a < b => (a, Some(old_at), None),
            (Some(a), None) => (a, Some(old_at), None),
            (_, Some(b)) => (b, None, new.next().map(|(i, _)| i)),
        };
        if o.is_some() {
            old_at += 1;
        }
        merged.push(person);
        from.push((o, n));
    }
    (merged, from)
}

/// Keeps `v` in `top` (largest first) if it is among the [`KEPT`] largest.
fn keep_largest(top: &mut Vec<f64>, v: f64) {
    if top.len() < KEPT || top.last().is_some_and(|min| v > *min) {
        let at = top.partition_point(|t| *t >= v);
        top.insert(at, v);
        top.truncate(KEPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, UInt32Array};
    use arrow::datatypes::Field;
    use std::sync::Arc;

    fn batch(persons: &[Option<u32>], points: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("person_idx", DataType::UInt32, true),
            Field::new("points", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt32Array::from(persons.to_vec())),
                Arc::new(Int64Array::from(points.to_vec())),
            ],
        )
        .expect("batch")
    }

    fn ceiling(batches: &[RecordBatch]) -> Result<Ceiling, IngestError> {
        let mut totals = Totals::new(&batches[0].schema(), "person_idx", &[]);
        for b in batches {
            totals.add_sorted(b)?;
        }
        Ok(totals
            .finish()
            .remove("points")
            .expect("a ceiling of points"))
    }

    /// Totals run over years (a person in two batches adds up), rows of no person count one
    /// by one, and magnitudes are absolute.
    #[test]
    fn ceilings_are_the_largest_totals_of_persons_over_every_batch() {
        let years = [
            batch(&[Some(1), Some(1), Some(4), None, None], &[10, -5, 7, 9, 2]),
            batch(&[Some(1), Some(2), Some(4), Some(9)], &[1, 30, 7, 3]),
        ];
        let c = ceiling(&years).expect("sorted batches");
        let expect = [30.0, 16.0, 14.0, 9.0, 3.0];
        assert_eq!(c.largest.len(), expect.len());
        for (got, want) in c.largest.iter().zip(expect) {
            assert!(*got >= want && *got - want < 1e-6, "{got} against {want}");
        }
        assert!(!c.zeros);
        let with_zero = [batch(&[Some(1), Some(2)], &[0, 4])];
        assert!(ceiling(&with_zero).expect("sorted").zeros);
    }

    #[test]
    fn rows_out_of_person_order_are_refused() {
        let unsorted = [batch(&[Some(3), Some(1)], &[1, 2])];
        assert!(ceiling(&unsorted).is_err());
        let split_run = [batch(&[Some(1), Some(2), Some(1)], &[1, 2, 3])];
        assert!(ceiling(&split_run).is_err());
    }
}
