//! HAVING: a HAVING kept as a flag (`shadow::lift_having`) leaves a row out only while none of
//! its cells is masked (see [`super::cells::ResultCells::kept`]).

use arrow::array::{Array, AsArray};

use super::cells::ResultCells;
use crate::DisclosureError;

pub(super) fn apply(cells: &mut ResultCells<'_>) -> Result<(), DisclosureError> {
    let Some(c) = cells.shadow.having else {
        return Ok(());
    };
    let flags =
        cells.batch.column(c).as_boolean_opt().ok_or_else(|| {
            DisclosureError::Check("the HAVING flag is not a boolean column".into())
        })?;
    cells.passes = (0..cells.rows)
        .map(|row| flags.is_valid(row) && flags.value(row))
        .collect();
    Ok(())
}
