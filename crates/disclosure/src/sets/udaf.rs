//! The aggregate functions niji adds to a plan (`niji_set`, `niji_few`, `niji_contributions`,
//! `niji_person`, `niji_a_facility`) and their DataFusion wiring.

use super::*;

pub const SET_FUNCTION: &str = "niji_set";
pub const CONTRIBUTIONS_FUNCTION: &str = "niji_contributions";
pub const FEW_FUNCTION: &str = "niji_few";
/// Largest contributions kept per cell (the dominance rule's n is at most this).
pub const TOP_CONTRIBUTIONS: usize = 5;

pub fn set_udaf() -> AggregateUDF {
    niji_udaf(Kind::Set, Signature::any(1, Volatility::Immutable))
}

/// At most `cap` distinct members per group (facilities: the rule only asks whether a cell
/// rests on fewer than its minimum). A group that has them all skips its rows unread, so a
/// large cell costs nearly nothing, where a full set would hash and keep every facility.
pub fn few_udaf(cap: usize) -> AggregateUDF {
    niji_udaf(
        Kind::Few(cap.clamp(1, MAX_FEW)),
        Signature::any(1, Volatility::Immutable),
    )
}

/// The largest cap of [`few_udaf`] (a policy's facility minimum).
pub const MAX_FEW: usize = 1_000;

pub fn contributions_udaf() -> AggregateUDF {
    niji_udaf(
        Kind::Contributions,
        Signature::variadic_any(Volatility::Immutable),
    )
}

pub(crate) fn niji_udaf(kind: Kind, signature: Signature) -> AggregateUDF {
    AggregateUDF::new_from_impl(NijiUdaf {
        kind,
        signature,
        ceilings: Vec::new(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Set,
    Few(usize),
    Contributions,
    Person,
    AFacility,
    Cell,
    Ceiled,
}

/// niji's aggregates, each computed by a groups accumulator: a Binary result and a Binary
/// state, but for the one member of `niji_person` and `niji_a_facility` (UInt32).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NijiUdaf {
    pub(crate) kind: Kind,
    pub(crate) signature: Signature,
    /// `niji_ceiled`'s ceilings, one per value (as bits, which compare and hash as the planner
    /// needs); empty for the others.
    pub(crate) ceilings: Vec<Vec<u64>>,
}

impl NijiUdaf {
    /// The accumulator; `values` is how many values (after the person) contributions take.
    pub(crate) fn groups(&self, values: usize) -> Box<dyn GroupsAccumulator + Sync> {
        match self.kind {
            Kind::Set => Box::new(Members(SetGroups::default())),
            Kind::Few(cap) => Box::new(Members(FewGroups::new(cap))),
            Kind::Contributions => Box::new(ByPerson(ContributionGroups::new(values.max(1)))),
            Kind::Person => Box::new(Members(FirstGroups::person())),
            Kind::AFacility => Box::new(Members(FirstGroups::default())),
            Kind::Cell => Box::new(ByPerson(CellGroups::new(values.max(1)))),
            Kind::Ceiled => Box::new(ByPerson(CeiledGroups::new(
                self.ceilings
                    .iter()
                    .map(|c| c.iter().map(|b| f64::from_bits(*b)).collect())
                    .collect(),
            ))),
        }
    }

    /// The type of the state, and of the result but for a cell's (a struct).
    pub(crate) fn carries(&self) -> DataType {
        match self.kind {
            Kind::Person | Kind::AFacility => DataType::UInt32,
            _ => DataType::Binary,
        }
    }
}

impl AggregateUDFImpl for NijiUdaf {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Set => SET_FUNCTION,
            Kind::Few(_) => FEW_FUNCTION,
            Kind::Contributions => CONTRIBUTIONS_FUNCTION,
            Kind::Person => PERSON_FUNCTION,
            Kind::AFacility => A_FACILITY_FUNCTION,
            Kind::Cell => CELL_FUNCTION,
            Kind::Ceiled => CEILED_FUNCTION,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let contributions_take = |args: &[DataType]| {
            args.first() == Some(&DataType::UInt32)
                && args.len() >= 2
                && args[1..].iter().all(|t| t == &DataType::Float64)
        };
        match (self.kind, args.first()) {
            (Kind::Person | Kind::AFacility, Some(DataType::UInt32)) => Ok(DataType::UInt32),
            (Kind::Contributions, _) if contributions_take(args) => Ok(DataType::Binary),
            (Kind::Cell, _) if contributions_take(args) => Ok(DataType::Struct(cell_fields())),
            // A ceiling for each value.
            (Kind::Ceiled, _)
                if contributions_take(args) && args.len() == self.ceilings.len() + 1 =>
            {
                Ok(DataType::Struct(cell_fields()))
            }
            (
                Kind::Set | Kind::Few(_),
                Some(
                    DataType::UInt32
                    | DataType::Binary
                    | DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View,
                ),
            ) => Ok(DataType::Binary),
            (_, other) => exec_err!("{} does not take {other:?}", self.name()),
        }
    }

    /// Only a group's one person or facility may be unknown (records without ID5 or facility).
    fn is_nullable(&self) -> bool {
        matches!(self.kind, Kind::Person | Kind::AFacility)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[state]", args.name),
            self.carries(),
            self.is_nullable(),
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup::new(
            self.groups(args.exprs.len().saturating_sub(1)),
        )?))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self.groups(args.exprs.len().saturating_sub(1)))
    }
}

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
