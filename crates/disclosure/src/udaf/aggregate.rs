//! One DataFusion aggregate implementation for all of niji's aggregates, told apart by
//! [`Kind`]: each computed by a groups accumulator over Binary results and states.

use super::*;

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
    FirstMembers(usize),
    Contributions,
    Person,
    AFacility,
    Cell,
    BoundedCell,
}

/// niji's aggregates, each computed by a groups accumulator: a Binary result and a Binary
/// state, but for the one member of `niji_person` and `niji_a_facility` (UInt32).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NijiUdaf {
    pub(crate) kind: Kind,
    pub(crate) signature: Signature,
    /// `niji_bounded_cell`'s ceilings, one per value (as bits, which compare and hash as the planner
    /// needs); empty for the others.
    pub(crate) ceilings: Vec<Vec<u64>>,
}

impl NijiUdaf {
    /// The accumulator; `values` is how many values (after the person) contributions take.
    pub(crate) fn groups(&self, values: usize) -> Box<dyn GroupsAccumulator + Sync> {
        match self.kind {
            Kind::Set => Box::new(Members(SetGroups::default())),
            Kind::FirstMembers(cap) => Box::new(Members(FirstMembersGroups::new(cap))),
            Kind::Contributions => Box::new(ByPerson(ContributionGroups::new(values.max(1)))),
            Kind::Person => Box::new(Members(FirstGroups::person())),
            Kind::AFacility => Box::new(Members(FirstGroups::default())),
            Kind::Cell => Box::new(ByPerson(CellGroups::new(values.max(1)))),
            Kind::BoundedCell => Box::new(ByPerson(BoundedCellGroups::new(
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
            Kind::FirstMembers(_) => FIRST_MEMBERS_FUNCTION,
            Kind::Contributions => CONTRIBUTIONS_FUNCTION,
            Kind::Person => PERSON_FUNCTION,
            Kind::AFacility => A_FACILITY_FUNCTION,
            Kind::Cell => CELL_FUNCTION,
            Kind::BoundedCell => BOUNDED_CELL_FUNCTION,
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
            (Kind::BoundedCell, _)
                if contributions_take(args) && args.len() == self.ceilings.len() + 1 =>
            {
                Ok(DataType::Struct(cell_fields()))
            }
            (
                Kind::Set | Kind::FirstMembers(_),
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
        Ok(Box::new(SingleGroup::new(
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
