//! The shadow of a researcher's plan: the same plan over views that also carry hidden columns
//! (the person index, the facility), rewritten so that every aggregate also computes, in the
//! same pass, the set of persons and facilities behind each group, the persons behind each of
//! its own aggregates, and each person's contribution to its magnitudes. Whatever the
//! researcher's SQL counts, the checks work on these.
//!
//! Column lineage comes from the same plan: for each output column, the source columns it is
//! computed from and its role. A plan whose lineage cannot be followed is refused release
//! (held), never guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, JoinType, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, Cast, TryCast};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Expr, ExprSchemable, LogicalPlan, Operator, Projection, TableScan,
    Volatility, cast, lit, when,
};

use niji_store::Strata;

use crate::strata::{CELL_FACILITIES, KeyedStrata, StrataCells, facility_of_udf, strata_udf};
use crate::udaf::{
    CELL_CONTRIBUTIONS, CELL_PERSONS, MAX_FIRST_MEMBERS, a_facility_udaf, bounded_cell_udaf,
    cell_field_udf, cell_udaf, contributions_udaf, first_members_udaf, person_udaf, set_udaf,
};

mod lineage;
mod magnitudes;
mod on_strata;
mod refusals;
mod rewrite;
#[cfg(test)]
mod tests;

use self::{lineage::*, magnitudes::*, on_strata::*, refusals::*, rewrite::*};

/// The person index of a person-level view (UInt32), or the set of persons behind an inner
/// aggregate's group (Binary).
pub const PERSON: &str = "__niji_person";
/// The facility of a row (its code), or the set of facilities behind an inner group.
pub const FACILITY: &str = "__niji_facility";
/// The persons behind one aggregate of the outermost aggregation.
const CELL_SET: &str = "__niji_cellset";
/// Per-person contributions to one magnitude of the outermost aggregation.
const CONTRIBUTION: &str = "__niji_contrib";
/// A person column's set and contributions together (`niji_cell`), which a projection above
/// its aggregation names as [`PERSON`] and [`CONTRIBUTION`] columns.
const CELL: &str = "__niji_cell";
/// A cell's strata (`niji_strata`), which a projection above its aggregation names as
/// [`PERSON`], [`FACILITY`] and [`CONTRIBUTION`] columns.
const STRATA: &str = "__niji_strata";
/// Whether a row passes the filters on aggregates between the outermost aggregation and the
/// result (a HAVING), which are kept as this flag instead of filtering (see [`lift_having`]).
const HAVING: &str = "__niji_having";
const HIDDEN: &str = "__niji_";

pub fn is_hidden(name: &str) -> bool {
    name.starts_with(HIDDEN)
}

/// What an output column is, at the outermost aggregation it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Not aggregated: a value of some row.
    RowLevel,
    GroupKey,
    Count,
    /// Sum, mean, variance and the like.
    Magnitude,
    /// Min, max, percentiles, a chosen value.
    Extreme,
    /// An aggregate that lists values (array_agg, string_agg).
    Listing,
}

fn classify(function: &str) -> Role {
    match function {
        "count" | "approx_distinct" => Role::Count,
        "sum" | "avg" | "mean" | "stddev" | "stddev_pop" | "stddev_samp" | "var" | "var_pop"
        | "var_samp" | "var_population" | "var_sample" | "covar" | "covar_pop" | "covar_samp"
        | "corr" => Role::Magnitude,
        "array_agg" | "string_agg" => Role::Listing,
        _ => Role::Extreme,
    }
}

/// A column of a project view: `db.table` and the column's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, Default)]
pub struct ColumnLineage {
    pub name: String,
    /// The roles it has at the outermost aggregation (several when an expression combines
    /// aggregates); empty for a row-level value.
    pub roles: BTreeSet<Role>,
    /// Source columns whose values it is computed from (a count's argument is not: a count
    /// shows none of its values).
    pub sources: BTreeSet<Source>,
    /// Scalar functions applied on the way.
    pub functions: BTreeSet<String>,
    /// The outermost aggregate expressions it derives from, by name.
    pub aggregates: BTreeSet<String>,
}

impl ColumnLineage {
    pub fn role(&self) -> Role {
        if self.roles.is_empty() {
            return Role::RowLevel;
        }
        let aggregates: Vec<Role> = self
            .roles
            .iter()
            .copied()
            .filter(|r| *r != Role::GroupKey)
            .collect();
        aggregates.into_iter().max().unwrap_or(Role::GroupKey)
    }
}

/// The rewritten plan, and where its hidden columns are.
#[derive(Debug)]
pub struct Shadow {
    /// Outputs the researcher's columns, in order, then the hidden ones.
    pub plan: LogicalPlan,
    pub lineage: Vec<ColumnLineage>,
    /// Output index of each group person set (one per person source), and whether any person
    /// column reaches the output unaggregated.
    pub person_sets: Vec<usize>,
    pub raw_persons: bool,
    pub facility_sets: Vec<usize>,
    /// Whether the facility sets may hold only some of a cell's facilities (one a person, see
    /// [`crate::udaf::a_facility_udaf`]): a cell they leave short is checked again exactly.
    pub facilities_bounded: bool,
    /// Aggregate name → output indexes of its person sets, and of its contributions (with the
    /// section of that column that is its own).
    pub cell_sets: BTreeMap<String, Vec<usize>>,
    pub contributions: BTreeMap<String, Vec<(usize, usize)>>,
    /// The magnitudes that are sums: their persons are those contributing anything (a zero
    /// adds nothing to a sum, as an absent row does not; to a mean it adds a row).
    pub sums: BTreeSet<String>,
    /// Every table the plan reads (`db.table`).
    pub tables: BTreeSet<String>,
    /// Output index of the flag of a HAVING kept as a flag: whether the row passes it.
    pub having: Option<usize>,
    /// Magnitudes whose contributions are bounded by ceilings.
    pub ceiled: usize,
    /// Aggregations whose cells were taken from strata.
    pub stratified: usize,
}

/// The ceilings of the columns of approved views (see [`niji_store::Ceiling`]), by view
/// column: only views whose rows are stored rows, each once, and whose persons are the stored
/// persons the ceilings were summed by.
pub type Ceilings = BTreeMap<Source, niji_store::Ceiling>;

/// What the store knows of the approved views beyond their rows, which a bounded shadow uses
/// instead of reading every row's person: the ceilings of their columns, the strata of views
/// whose rows are a table's stored rows, all of them, each once, and the pseudonym function of
/// person-level views (each by `db.table`).
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    pub ceilings: Ceilings,
    pub strata: BTreeMap<String, Arc<Strata>>,
    /// Person index → the view's pseudonym, failing on a person it has none for. Pseudonyms
    /// and persons are one to one, so an aggregation grouped by a view's pseudonym groups by
    /// its person instead (a narrower key, and no pseudonym computed a row) and maps each
    /// group's person to its pseudonym after: the same groups, with each one's person at hand.
    pub pseudonyms: BTreeMap<String, datafusion::logical_expr::ScalarUDF>,
}

/// Why a plan has no shadow: its result is held, and stays in the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

fn unsupported(what: impl Into<String>) -> Unsupported {
    Unsupported(what.into())
}

impl From<datafusion::error::DataFusionError> for Unsupported {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Unsupported(format!(
            "the plan could not be rewritten for checking: {}",
            e.strip_backtrace().lines().next().unwrap_or("")
        ))
    }
}

/// Builds the shadow of `plan`, which was planned from the researcher's SQL over the shadow
/// views. `visible` is the output schema the researcher's own plan has: the shadow must match
/// it column for column. Facilities are counted up to `facility_cap`. With `bounded`, the
/// largest contributions of a cell are bounded from above rather than found, by its columns'
/// ceilings where they apply and otherwise in one pass with its persons, a cell that is a union
/// of whole strata is taken from them, and a group of one person hands on one of its
/// facilities: a result whose bounds do not settle a rule is checked again on the shadow built
/// without (see [`crate::Verdict::Recheck`]).
pub fn shadow(
    plan: LogicalPlan,
    visible: &arrow::datatypes::Schema,
    facility_cap: usize,
    bounded: Option<&Bounds>,
) -> Result<Shadow, Unsupported> {
    let none = Bounds::default();
    let plan_fields: Vec<(String, DataType)> = plan
        .schema()
        .fields()
        .iter()
        .filter(|f| !is_hidden(f.name()))
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let wanted: Vec<(String, DataType)> = visible
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    if visible.fields().iter().any(|f| is_hidden(f.name())) {
        return Err(unsupported("output columns may not be named __niji_…"));
    }
    if plan_fields != wanted {
        return Err(unsupported(
            "the checked plan does not match the researcher's plan",
        ));
    }
    let mut lineage = Vec::new();
    for (i, field) in plan.schema().fields().iter().enumerate() {
        if is_hidden(field.name()) {
            continue;
        }
        let mut l = ColumnLineage {
            name: field.name().clone(),
            ..ColumnLineage::default()
        };
        trace_column(&plan, i, false, &mut l)?;
        lineage.push(l);
    }
    let mut tables = BTreeSet::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(t) = node {
            tables.insert(table_name(&t.table_name));
        }
        Ok(TreeNodeRecursion::Continue)
    })?;

    refuse_filtering_subqueries(&plan)?;
    let (plan, _) = lift_having(plan, false)?;
    refuse_unlifted_having(&plan)?;

    let mut rewrite = Rewrite {
        set: Arc::new(set_udaf()),
        person: Arc::new(person_udaf()),
        facilities: Arc::new(first_members_udaf(facility_cap)),
        a_facility: bounded.map(|_| Arc::new(a_facility_udaf())),
        facilities_bounded: false,
        contributions: Arc::new(contributions_udaf()),
        cell: bounded.map(|_| Arc::new(cell_udaf())),
        bounds: bounded.unwrap_or(&none),
        ceiled: 0,
        stratified: 0,
        facility_cap,
        next: 0,
        names: BTreeMap::new(),
        sums: BTreeSet::new(),
    };
    // The tree walk speaks DataFusion errors; why a node was not rewritten is kept aside.
    let mut refused = None;
    let augmented = plan
        .transform_up(|node| {
            rewrite.node(node).map(Transformed::yes).map_err(|u| {
                refused = Some(u);
                datafusion::error::DataFusionError::Plan(String::new())
            })
        })
        .map_err(|e| refused.take().unwrap_or_else(|| Unsupported::from(e)))?
        .data;
    // Visible columns first, in the researcher's order, then the hidden ones.
    let schema = augmented.schema().clone();
    let columns: Vec<Column> = schema.columns();
    let (visible_cols, hidden_cols): (Vec<_>, Vec<_>) =
        columns.into_iter().partition(|c| !is_hidden(&c.name));
    let ordered: Vec<Expr> = visible_cols
        .into_iter()
        .chain(hidden_cols)
        .map(Expr::Column)
        .collect();
    let plan = LogicalPlan::Projection(Projection::try_new(ordered, Arc::new(augmented))?);

    let mut out = Shadow {
        plan,
        lineage,
        person_sets: Vec::new(),
        raw_persons: false,
        facility_sets: Vec::new(),
        facilities_bounded: rewrite.facilities_bounded,
        cell_sets: BTreeMap::new(),
        contributions: BTreeMap::new(),
        sums: std::mem::take(&mut rewrite.sums),
        tables,
        having: None,
        ceiled: rewrite.ceiled,
        stratified: rewrite.stratified,
    };
    for (i, field) in out.plan.schema().fields().iter().enumerate() {
        let name = field.name().as_str();
        if name == HAVING {
            out.having = Some(i);
        } else if name.starts_with(PERSON) {
            if field.data_type() == &DataType::Binary {
                out.person_sets.push(i);
            } else {
                out.raw_persons = true;
            }
        } else if name.starts_with(FACILITY) {
            if field.data_type() == &DataType::Binary {
                out.facility_sets.push(i);
            }
        } else if let Some(aggregates) = rewrite.names.get(name) {
            for (section, aggregate) in aggregates.iter().enumerate() {
                if name.starts_with(CELL_SET) {
                    out.cell_sets.entry(aggregate.clone()).or_default().push(i);
                } else {
                    out.contributions
                        .entry(aggregate.clone())
                        .or_default()
                        .push((i, section));
                }
            }
        }
    }
    Ok(out)
}
