//! `niji_set(x)`: the set of persons (or facilities, or the sets of an inner aggregate)
//! behind each group, as a serialized roaring bitmap.

use super::*;

pub const SET_FUNCTION: &str = "niji_set";

pub fn set_udaf() -> AggregateUDF {
    niji_udaf(Kind::Set, Signature::any(1, Volatility::Immutable))
}
