//! The aggregates niji adds to a researcher's plan: the set of persons (or facilities) behind
//! each group, as a roaring bitmap, and each person's contribution to a magnitude.
//!
//! `niji_set(x)` takes person indexes (UInt32), facility marks (UInt32) or codes (strings,
//! marked as ingest marks them: a collision can only make a count smaller, so a rule errs
//! towards suppressing) or the sets
//! of an inner aggregate (Binary), and returns the serialized union. It is computed in the same
//! pass as the researcher's own aggregates.
//!
//! `niji_contributions(person, value)` sums |value| per person and returns the total and the
//! largest contributions, for the dominance and p-percent rules.

type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt32Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator,
    ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use niji_store::facility_mark;
use roaring::RoaringBitmap;

// One file per aggregate:
mod a_facility;
mod bounded_cell;
mod cell;
mod contributions_udaf;
mod first_members;
mod person_set;
mod single_person;
// Their byte forms, for an engine in other processes.
pub(crate) mod wire;
// What they share: the one DataFusion implementation, the set encoding, contributions and
// their decoding, a group's runs, member and per-person accumulators.
mod aggregate;
mod by_person;
mod contributions;
mod encoding;
mod group;
mod members;
mod person_sums;
#[cfg(test)]
mod tests;

pub use self::{
    a_facility::*, bounded_cell::*, cell::*, contributions::*, contributions_udaf::*, encoding::*,
    first_members::*, person_set::*, single_person::*,
};
use self::{aggregate::*, by_person::*, group::*, members::*, person_sums::*};
