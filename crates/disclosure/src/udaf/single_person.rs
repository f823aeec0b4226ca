//! `niji_person(person)`: the one person of each group of an aggregation grouped by the
//! pseudonym.

use super::*;

pub const PERSON_FUNCTION: &str = "niji_person";

/// `niji_person(person)`: the person of a group of an aggregation grouped by the pseudonym,
/// whose every group is one person. It is carried as a value, not as a second group key, which
/// would turn DataFusion's grouping on one primitive column into a slower grouping on several.
/// A group with two persons (two pseudonyms colliding) fails the query rather than hide one.
pub fn person_udaf() -> AggregateUDF {
    niji_udaf(
        Kind::Person,
        Signature::exact(vec![DataType::UInt32], Volatility::Immutable),
    )
}
