//! A table with a facility column also stores each row's facility mark
//! ([`niji_store::facility_mark`] of the code, UInt32): disclosure control counts the
//! facilities behind a cell on it, where reading the codes as text cost more than the query.

use std::sync::Arc;

use arrow::array::{AsArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use niji_catalog::{DisclosureRole, Table};
use niji_store::FACILITY_MARK_COLUMN;

use crate::IngestError;

/// The facility column of `table` whose rows get a mark, if it has one.
pub(crate) fn marked_column(table: &Table) -> Option<&str> {
    table
        .column_for(DisclosureRole::Facility)
        .map(|c| c.name.as_str())
}

/// `schema` with the mark column added.
pub(crate) fn schema(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(FACILITY_MARK_COLUMN, DataType::UInt32, true));
    Arc::new(Schema::new(fields))
}

/// `batch` with the mark of its `column`'s code on each row (null where the code is).
pub(crate) fn attach(batch: &RecordBatch, column: &str) -> Result<RecordBatch, IngestError> {
    let codes = batch
        .column_by_name(column)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| IngestError::Internal(format!("no text column {column}")))?;
    let marks: UInt32Array = codes
        .iter()
        .map(|code| code.map(niji_store::facility_mark))
        .collect();
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(marks));
    Ok(RecordBatch::try_new(schema(&batch.schema()), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray};

    #[test]
    fn each_code_gets_its_stable_mark_and_null_stays_null() {
        let codes = StringArray::from(vec![
            Some("1311234567"),
            None,
            Some("1311234567"),
            Some("2710000001"),
        ]);
        let batch = RecordBatch::try_from_iter([("facility_code", Arc::new(codes) as _)]).unwrap();
        let marked = attach(&batch, "facility_code").unwrap();
        let marks = marked
            .column_by_name(FACILITY_MARK_COLUMN)
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt32Type>();
        assert_eq!(marks.value(0), niji_store::facility_mark("1311234567"));
        assert!(marks.is_null(1));
        assert_eq!(marks.value(0), marks.value(2));
        assert_ne!(marks.value(0), marks.value(3));
        // Stored, so fixed for good: a change would split a store's facilities in two.
        assert_eq!(marks.value(0), 0xcb3a_7aa1);
    }
}
