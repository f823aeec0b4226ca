//! The check an extract passes before it is written, independent of how it was made: its
//! groups are counted again from the file's own labels, and every group must hold k records.
//! Nothing about codes, levels or suppression is trusted.

use ahash::AHashMap;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;

use crate::AnonymiseError;

/// The size of every group of records alike in `quasi` columns; an error naming the smallest
/// if it is under `k`.
pub fn check_k(batch: &RecordBatch, quasi: &[&str], k: u64) -> Result<Vec<u64>, AnonymiseError> {
    let mut columns = Vec::with_capacity(quasi.len());
    for name in quasi {
        let c = batch
            .column_by_name(name)
            .ok_or_else(|| AnonymiseError::Check(format!("the extract has no column {name}")))?;
        let c = arrow::compute::cast(c, &DataType::Utf8)?;
        columns.push(c);
    }
    let strings: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
    let mut sizes: AHashMap<Vec<Option<&str>>, u64> = AHashMap::new();
    for row in 0..batch.num_rows() {
        let key = strings
            .iter()
            .map(|s| s.is_valid(row).then(|| s.value(row)))
            .collect();
        *sizes.entry(key).or_default() += 1;
    }
    let mut sizes: Vec<u64> = sizes.into_values().collect();
    sizes.sort_unstable();
    if let Some(&smallest) = sizes.first()
        && smallest < k
    {
        return Err(AnonymiseError::Check(format!(
            "a group of {smallest} records is alike in every quasi-identifier; k is {k}"
        )));
    }
    Ok(sizes)
}
