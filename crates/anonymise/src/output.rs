//! The extract's file rows: a record number, the quasi-identifiers as labels at the chosen
//! level (`*` where suppressed), the kept attributes (top- and bottom-coded where the
//! definition says), only the records kept, in an order that depends on their contents alone.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{SortColumn, SortOptions, filter, lexsort_to_indices, take};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use niji_catalog::anonymisation::{Anonymisation, ExtractColumn, SUPPRESSED_LABEL};

use crate::AnonymiseError;
use crate::encode::Quasi;
use crate::suppress::Suppressed;

/// A kept number as the file says it: `{top}以上`, `{bottom}以下`, or itself.
fn coded(column: &ExtractColumn, array: &ArrayRef) -> Result<(ArrayRef, u64), AnonymiseError> {
    if column.top.is_none() && column.bottom.is_none() {
        return Ok((array.clone(), 0));
    }
    if !array.data_type().is_integer() {
        return Err(AnonymiseError::Input(format!(
            "{} is {}; top- and bottom-coding is for whole numbers",
            column.name,
            array.data_type()
        )));
    }
    let ints = arrow::compute::cast(array, &DataType::Int64)?;
    let ints = ints.as_primitive::<Int64Type>();
    let mut count = 0;
    let labels: StringArray = (0..ints.len())
        .map(|i| {
            if ints.is_null(i) {
                return None;
            }
            let v = ints.value(i);
            Some(match (column.top, column.bottom) {
                (Some(top), _) if v >= top => {
                    count += 1;
                    format!("{top}以上")
                }
                (_, Some(bottom)) if v <= bottom => {
                    count += 1;
                    format!("{bottom}以下")
                }
                _ => v.to_string(),
            })
        })
        .collect();
    Ok((Arc::new(labels), count))
}

/// A quasi-identifier's labels at `level`, `*` where suppressed, empty labels missing.
fn quasi_labels(q: &Quasi, level: usize, cells: &[u32], star: u32) -> ArrayRef {
    let labels: StringArray = cells
        .iter()
        .map(|&c| {
            if c == star {
                Some(SUPPRESSED_LABEL)
            } else {
                let l = q.labels[level][c as usize].as_str();
                (!l.is_empty()).then_some(l)
            }
        })
        .collect();
    Arc::new(labels)
}

/// The file's columns in the definition's order (without the record number), every row.
pub(crate) struct Columns {
    pub(crate) fields: Vec<Field>,
    pub(crate) arrays: Vec<ArrayRef>,
    /// Records top- or bottom-coded, per kept column that codes.
    pub(crate) coded: Vec<(String, u64)>,
}

/// The columns of `input` as the file has them.
pub(crate) fn columns(
    input: &RecordBatch,
    spec: &Anonymisation,
    quasi: &[Quasi],
    node: &[usize],
    suppressed: &Suppressed,
) -> Result<Columns, AnonymiseError> {
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    let mut coded_counts = Vec::new();
    for column in &spec.columns {
        if let Some(i) = quasi.iter().position(|q| q.name == column.name) {
            arrays.push(quasi_labels(
                &quasi[i],
                node[i],
                &suppressed.cells[i],
                suppressed.star[i],
            ));
            fields.push(Field::new(&column.name, DataType::Utf8, true));
            continue;
        }
        let array = input.column_by_name(&column.name).ok_or_else(|| {
            AnonymiseError::Input(format!("the query gives no column {}", column.name))
        })?;
        let (array, count) = coded(column, array)?;
        if column.top.is_some() || column.bottom.is_some() {
            coded_counts.push((column.name.clone(), count));
        }
        fields.push(Field::new(&column.name, array.data_type().clone(), true));
        arrays.push(array);
    }
    Ok(Columns {
        fields,
        arrays,
        coded: coded_counts,
    })
}

/// The kept rows, ordered by every column, numbered from 1.
pub(crate) fn file_batch(
    spec: &Anonymisation,
    columns: Columns,
    kept: &[bool],
) -> Result<RecordBatch, AnonymiseError> {
    let Columns { fields, arrays, .. } = columns;
    let mask = BooleanArray::from(kept.to_vec());
    let arrays = arrays
        .iter()
        .map(|a| filter(a.as_ref(), &mask))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = arrays.first().map_or(0, |a| a.len());
    let order: Vec<SortColumn> = arrays
        .iter()
        .map(|a| SortColumn {
            values: a.clone(),
            options: Some(SortOptions {
                descending: false,
                nulls_first: true,
            }),
        })
        .collect();
    let arrays = if order.is_empty() || rows == 0 {
        arrays
    } else {
        let indices = lexsort_to_indices(&order, None)?;
        arrays
            .iter()
            .map(|a| take(a.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>()?
    };
    let width = rows.to_string().len().max(6);
    let ids: StringArray = (1..=rows).map(|i| Some(format!("{i:0width$}"))).collect();
    let mut all_fields = vec![Field::new(&spec.record_id, DataType::Utf8, false)];
    all_fields.extend(fields);
    let mut all_arrays: Vec<ArrayRef> = vec![Arc::new(ids)];
    all_arrays.extend(arrays);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(all_fields)),
        all_arrays,
    )?)
}
