//! The byte forms of the functions disclosure control puts in a plan, for an engine that runs
//! plans in other processes (Ballista): the aggregates and cell fields (their kind and
//! parameters), `niji_strata` and `niji_facility_of` (the strata of the table, which carry
//! person indexes, never identifiers or keys) and total functions (the function made total,
//! by name, found again among the engine's own).

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, SortField};
use datafusion::common::error::GenericError;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::ScalarUDF;
use niji_store::Strata;
use niji_store::wire::{WireError, WireReader, WireWriter, read_tagged};

use crate::strata::{FacilityOf, KeyedStrata, StrataCells, StrataUdf, facility_of_udf, strata_udf};
use crate::total::{TotalUdf, total_udf};

pub use crate::udaf::wire::{decode_aggregate, encode_aggregate};

const STRATA: &str = "niji.strata.v1";
const FACILITY_OF: &str = "niji.facility-of.v1";
const TOTAL: &str = "niji.total.v1";

fn external_error(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The byte form of `udf` when it is one of disclosure control's functions.
pub fn encode_function(udf: &ScalarUDF) -> Result<Option<Vec<u8>>> {
    if let Some(bytes) = crate::udaf::wire::encode_cell_field(udf) {
        return Ok(Some(bytes));
    }
    let inner: &dyn std::any::Any = udf.inner().as_ref();
    if let Some(f) = inner.downcast_ref::<TotalUdf>() {
        let mut w = WireWriter::tagged(TOTAL);
        w.text(f.inner().name());
        return Ok(Some(w.finish()));
    }
    if let Some(f) = inner.downcast_ref::<FacilityOf>() {
        let mut w = WireWriter::tagged(FACILITY_OF);
        w.bytes(&f.strata.encode().map_err(external_error)?);
        return Ok(Some(w.finish()));
    }
    if let Some(f) = inner.downcast_ref::<StrataUdf>() {
        let mut w = WireWriter::tagged(STRATA);
        let cells = &f.cells;
        w.bytes(&cells.strata.encode().map_err(external_error)?)
            .u64(cells.facility_cap as u64)
            .u64(cells.values.len() as u64);
        for (column, ceiling) in &cells.values {
            w.text(column).f64s(ceiling);
        }
        let keyed = &f.keyed;
        w.bytes(&types_form(&keyed.arg_types)?)
            .u64(u64::from(keyed.global))
            .u64(keyed.strata_of.len() as u64);
        for (row, strata) in &keyed.strata_of {
            let strata: Vec<u64> = strata.iter().map(|&s| u64::from(s)).collect();
            w.bytes(row).u64s(&strata);
        }
        return Ok(Some(w.finish()));
    }
    Ok(None)
}

/// The function `bytes` encode, or `None` when they are not one of disclosure control's.
/// `builtin` finds the engine's own function of a name, which a total function wraps.
pub fn decode_function(
    bytes: &[u8],
    builtin: &dyn Fn(&str) -> Option<Arc<ScalarUDF>>,
) -> Result<Option<ScalarUDF>> {
    if let Some(udf) = crate::udaf::wire::decode_cell_field(bytes)? {
        return Ok(Some(udf));
    }
    read_tagged(
        bytes,
        |tag| [TOTAL, FACILITY_OF, STRATA].contains(&tag),
        |tag, r| {
            Ok(match tag {
                TOTAL => {
                    let name = r.text()?;
                    let inner =
                        builtin(&name).ok_or(format!("no function {name} to make total"))?;
                    total_udf(&inner)
                }
                FACILITY_OF => facility_of_udf(Arc::new(Strata::decode(r.bytes()?)?)),
                _ => read_strata(r)?,
            })
        },
    )
    .map_err(DataFusionError::from)
}

/// `niji_strata`'s fields, in [`encode_function`]'s order.
fn read_strata(r: &mut WireReader<'_>) -> std::result::Result<ScalarUDF, GenericError> {
    let strata = Strata::decode(r.bytes()?)?;
    let facility_cap = usize::try_from(r.u64()?)?;
    let values = (0..r.u64()?)
        .map(|_| Ok((r.text()?, r.f64s()?)))
        .collect::<std::result::Result<Vec<_>, WireError>>()?;
    let arg_types = types_of(r.bytes()?)?;
    let global = r.u64()? == 1;
    let mut strata_of = HashMap::new();
    for _ in 0..r.u64()? {
        let row: Box<[u8]> = r.bytes()?.into();
        let strata = r
            .u64s()?
            .into_iter()
            .map(u32::try_from)
            .collect::<std::result::Result<Vec<u32>, _>>()?;
        strata_of.insert(row, strata);
    }
    // The row form of keys is the converter's for these types, wherever it is made.
    let converter = RowConverter::new(arg_types.iter().cloned().map(SortField::new).collect())?;
    Ok(strata_udf(
        StrataCells {
            strata: Arc::new(strata),
            facility_cap,
            values,
        },
        KeyedStrata {
            arg_types,
            converter,
            strata_of,
            global,
        },
    ))
}

/// Types as the schema of an empty Arrow IPC stream.
fn types_form(types: &[DataType]) -> Result<Vec<u8>> {
    let fields: Vec<Field> = types
        .iter()
        .enumerate()
        .map(|(i, t)| Field::new(format!("k{i}"), t.clone(), true))
        .collect();
    let mut writer = StreamWriter::try_new(Vec::new(), &Schema::new(fields))?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

fn types_of(bytes: &[u8]) -> Result<Vec<DataType>> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    Ok(reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect())
}
