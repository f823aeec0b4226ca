//! The byte forms of niji's aggregates and of the cell field functions: a kind and its
//! parameters (a cap, ceilings), from which the public constructors build the same function.

use datafusion::common::DataFusionError;
use niji_store::wire::{WireError, WireWriter, read_tagged};

use super::*;

const AGGREGATE: &str = "niji.aggregate.v1";
const CELL_FIELD: &str = "niji.cell-field.v1";

/// The byte form of `udaf` when it is one of niji's aggregates.
pub fn encode_aggregate(udaf: &AggregateUDF) -> Option<Vec<u8>> {
    let inner: &dyn std::any::Any = udaf.inner().as_ref();
    let f = inner.downcast_ref::<NijiUdaf>()?;
    let mut w = WireWriter::tagged(AGGREGATE);
    let (kind, cap) = match f.kind {
        Kind::Set => ("set", 0),
        Kind::FirstMembers(cap) => ("first-members", cap),
        Kind::Contributions => ("contributions", 0),
        Kind::Person => ("person", 0),
        Kind::AFacility => ("a-facility", 0),
        Kind::Cell => ("cell", 0),
        Kind::BoundedCell => ("bounded-cell", 0),
    };
    w.text(kind).u64(cap as u64).u64(f.ceilings.len() as u64);
    for ceiling in &f.ceilings {
        w.u64s(ceiling);
    }
    Some(w.finish())
}

/// The aggregate `bytes` encode, or `None` when they are not an aggregate's form.
pub fn decode_aggregate(bytes: &[u8]) -> Result<Option<AggregateUDF>> {
    read_tagged(
        bytes,
        |tag| tag == AGGREGATE,
        |_, r| {
            let kind = r.text()?;
            let cap = usize::try_from(r.u64()?)?;
            let ceilings: Vec<Vec<f64>> = (0..r.u64()?)
                .map(|_| r.f64s())
                .collect::<std::result::Result<_, WireError>>()?;
            Ok(match kind.as_str() {
                "set" => set_udaf(),
                "first-members" => first_members_udaf(cap),
                "contributions" => contributions_udaf(),
                "person" => person_udaf(),
                "a-facility" => a_facility_udaf(),
                "cell" => cell_udaf(),
                "bounded-cell" => bounded_cell_udaf(&ceilings),
                other => return Err(format!("no aggregate {other} travels").into()),
            })
        },
    )
    .map_err(DataFusionError::from)
}

/// The byte form of `udf` when it is a cell field function.
pub fn encode_cell_field(udf: &ScalarUDF) -> Option<Vec<u8>> {
    let inner: &dyn std::any::Any = udf.inner().as_ref();
    let f = inner.downcast_ref::<CellField>()?;
    let mut w = WireWriter::tagged(CELL_FIELD);
    w.text(f.field);
    Some(w.finish())
}

/// The cell field function `bytes` encode, or `None` when they are not its form.
pub fn decode_cell_field(bytes: &[u8]) -> Result<Option<ScalarUDF>> {
    read_tagged(
        bytes,
        |tag| tag == CELL_FIELD,
        |_, r| {
            let field = match r.text()?.as_str() {
                CELL_PERSONS => CELL_PERSONS,
                CELL_CONTRIBUTIONS => CELL_CONTRIBUTIONS,
                crate::strata::CELL_FACILITIES => crate::strata::CELL_FACILITIES,
                other => return Err(format!("a cell has no field {other}").into()),
            };
            Ok(cell_field_udf(field))
        },
    )
    .map_err(DataFusionError::from)
}
