//! `niji_a_facility(mark)`: one facility of each group, for groups of one person.

use super::*;

pub const A_FACILITY_FUNCTION: &str = "niji_a_facility";

/// `niji_a_facility(mark)`: one facility of each group (its first), for groups of one person
/// that an outer aggregation counts facilities over. The facilities an outer cell finds so are
/// some of its own, never more: enough to pass the rule, and where they fall short the exact
/// shadow counts them all. A person's few facilities would otherwise be searched a row.
pub fn a_facility_udaf() -> AggregateUDF {
    niji_udaf(
        Kind::AFacility,
        Signature::exact(vec![DataType::UInt32], Volatility::Immutable),
    )
}
