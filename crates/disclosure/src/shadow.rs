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

use niji_catalog::Strata;

use crate::sets::{
    CELL_CONTRIBUTIONS, CELL_PERSONS, MAX_FEW, a_facility_udaf, ceiled_udaf, cell_field_udf,
    cell_udaf, contributions_udaf, few_udaf, person_udaf, set_udaf,
};
use crate::strata::{CELL_FACILITIES, KeyedStrata, StrataCells, facility_of_udf, strata_udf};

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
    /// [`crate::sets::a_facility_udaf`]): a cell they leave short is checked again exactly.
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

/// The ceilings of the columns of approved views (see [`niji_catalog::Ceiling`]), by view
/// column: only views whose rows are stored rows, each once, and whose persons are the stored
/// persons the ceilings were summed by.
pub type Ceilings = BTreeMap<Source, niji_catalog::Ceiling>;

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
        facilities: Arc::new(few_udaf(facility_cap)),
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

/// Whether `predicate`, over `input`, reads an aggregate's value (not only group keys).
fn reads_an_aggregate(input: &LogicalPlan, predicate: &Expr) -> Result<bool, Unsupported> {
    let mut l = ColumnLineage::default();
    trace_expr(input, predicate, false, &mut l)?;
    Ok(l.roles.iter().any(|r| *r != Role::GroupKey))
}

/// Filters that choose rows by an aggregate's value on the way from the outermost aggregation
/// to the result (a HAVING, or a WHERE over an aggregated subquery): a masked row that is there,
/// or is not, would tell its value. Each is kept as the flag [`HAVING`] instead, so that the
/// rules show every masked row whatever the filter gives, and leave out only rows that pass
/// every rule and fail the filter. Whether the returned plan has the flag. A LIMIT above such a
/// filter would choose other rows once it no longer filters: refused.
fn lift_having(plan: LogicalPlan, limited: bool) -> Result<(LogicalPlan, bool), Unsupported> {
    let rebuilt = |plan: LogicalPlan, input: LogicalPlan| -> Result<LogicalPlan, Unsupported> {
        Ok(plan.with_new_exprs(plan.expressions(), vec![input])?)
    };
    match plan {
        LogicalPlan::Projection(p) => {
            let (input, lifted) = lift_having(p.input.as_ref().clone(), limited)?;
            let mut exprs = p.expr;
            if lifted {
                exprs.push(Expr::Column(Column::new_unqualified(HAVING)));
            }
            Ok((
                LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(input))?),
                lifted,
            ))
        }
        LogicalPlan::Sort(ref s) => {
            let (input, lifted) =
                lift_having(s.input.as_ref().clone(), limited || s.fetch.is_some())?;
            Ok((rebuilt(plan, input)?, lifted))
        }
        LogicalPlan::Limit(ref l) => {
            let (input, lifted) = lift_having(l.input.as_ref().clone(), true)?;
            Ok((rebuilt(plan, input)?, lifted))
        }
        LogicalPlan::SubqueryAlias(ref a) => {
            let (input, lifted) = lift_having(a.input.as_ref().clone(), limited)?;
            Ok((rebuilt(plan, input)?, lifted))
        }
        LogicalPlan::Filter(f) if reads_an_aggregate(&f.input, &f.predicate)? => {
            if limited {
                return Err(unsupported(
                    "a LIMIT over a HAVING cannot be checked yet: drop the LIMIT, or the HAVING",
                ));
            }
            let (input, lifted) = lift_having(f.input.as_ref().clone(), limited)?;
            let mut flag = f.predicate.is_true();
            if lifted {
                flag = Expr::Column(Column::new_unqualified(HAVING)).and(flag);
            }
            let exprs: Vec<Expr> = input
                .schema()
                .columns()
                .into_iter()
                .filter(|c| c.name != HAVING)
                .map(Expr::Column)
                .chain([flag.alias(HAVING)])
                .collect();
            Ok((
                LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(input))?),
                true,
            ))
        }
        LogicalPlan::Filter(ref f) => {
            let (input, lifted) = lift_having(f.input.as_ref().clone(), limited)?;
            Ok((rebuilt(plan, input)?, lifted))
        }
        other => Ok((other, false)),
    }
}

/// A filter on aggregates [`lift_having`] could not reach (over a join of aggregated results,
/// say), or a join on aggregated values, still chooses rows by a value no rule sees: refused.
/// Filters and joins inside an aggregation's input choose the rows it aggregates, whose
/// persons are counted as usual.
fn refuse_unlifted_having(plan: &LogicalPlan) -> Result<(), Unsupported> {
    let mut problem = None;
    plan.apply(|node| {
        Ok(match node {
            LogicalPlan::Aggregate(_) => TreeNodeRecursion::Jump,
            // A join on an aggregated value keeps rows by it, as a filter would.
            LogicalPlan::Join(j) => {
                let mut keys =
                    j.on.iter()
                        .flat_map(|(l, r)| [(&*j.left, l), (&*j.right, r)]);
                let on_values = keys
                    .try_fold(false, |any, (side, key)| {
                        Ok::<_, Unsupported>(any || reads_an_aggregate(side, key)?)
                    })
                    .and_then(|any| match &j.filter {
                        Some(f) if !any => reads_an_aggregate(node, f),
                        _ => Ok(any),
                    });
                refuse_if(on_values, "a join on aggregated values", &mut problem)
            }
            LogicalPlan::Filter(f) => refuse_if(
                reads_an_aggregate(&f.input, &f.predicate),
                "a filter on aggregated values over a join",
                &mut problem,
            ),
            _ => TreeNodeRecursion::Continue,
        })
    })?;
    problem.map_or(Ok(()), Err)
}

/// Goes on unless `found` is true (`what` cannot be checked) or an error; either is kept in
/// `problem`.
fn refuse_if(
    found: Result<bool, Unsupported>,
    what: &str,
    problem: &mut Option<Unsupported>,
) -> TreeNodeRecursion {
    match found {
        Ok(false) => TreeNodeRecursion::Continue,
        Ok(true) => {
            *problem = Some(unsupported(format!("{what} cannot be checked yet")));
            TreeNodeRecursion::Stop
        }
        Err(u) => {
            *problem = Some(u);
            TreeNodeRecursion::Stop
        }
    }
}

/// Subqueries that choose rows make a result tell of the subquery's rows, which no rule sees:
/// `WHERE x IN (SELECT … HAVING count(*) < 3)`, a comparison with a scalar subquery, an
/// EXISTS. Only persons chosen by who they are are checked: `pid IN (SELECT pid …)` (a
/// cohort, chosen by what is known of each person) and `pid = (SELECT min(pid) …)` or `<>`;
/// the outer cells count the persons so chosen. Anything else is refused.
fn refuse_filtering_subqueries(plan: &LogicalPlan) -> Result<(), Unsupported> {
    let mut problem = None;
    plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            expr.apply(|e| {
                Ok(match chooses_persons(node, e) {
                    None => TreeNodeRecursion::Continue,
                    Some(true) => TreeNodeRecursion::Jump,
                    Some(false) => {
                        problem = Some(unsupported(
                            "subqueries that choose rows cannot be checked yet, except persons chosen by who they are: pid IN (SELECT pid …), pid = or <> (SELECT min(pid) …)",
                        ));
                        TreeNodeRecursion::Stop
                    }
                })
            })?;
        }
        Ok(if problem.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    problem.map_or(Ok(()), Err)
}

/// For an expression of `node` that uses a subquery: whether it chooses persons by who they
/// are (`pid IN (SELECT pid …)`, `pid = (SELECT min(pid) …)` or `<>`). None for one that
/// uses none itself (its parts are looked at in turn).
fn chooses_persons(node: &LogicalPlan, e: &Expr) -> Option<bool> {
    let is_pid = |e: &Expr| node.inputs().iter().any(|input| is_pseudonym_of(input, e));
    let a_person = |e: &Expr| {
        matches!(e, Expr::ScalarSubquery(q)
            if q.outer_ref_columns.is_empty() && yields_a_person(&q.subquery))
    };
    match e {
        Expr::BinaryExpr(b) if matches!(b.op, Operator::Eq | Operator::NotEq) => {
            ((is_pid(&b.left) && a_person(&b.right)) || (is_pid(&b.right) && a_person(&b.left)))
                .then_some(true)
        }
        Expr::InSubquery(s) => Some(
            !s.negated
                && is_pid(&s.expr)
                && s.subquery.outer_ref_columns.is_empty()
                && s.subquery.subquery.schema().fields().len() == 1
                && is_view_pseudonym(&s.subquery.subquery, 0),
        ),
        Expr::ScalarSubquery(_) | Expr::Exists(_) => Some(false),
        _ => None,
    }
}

/// Whether a subquery's one column is a pseudonym, or the least or greatest of one: a person.
fn yields_a_person(plan: &LogicalPlan) -> bool {
    if plan.schema().fields().len() != 1 {
        return false;
    }
    if is_view_pseudonym(plan, 0) {
        return true;
    }
    let Some((LogicalPlan::Aggregate(a), index)) = origin(plan, 0) else {
        return false;
    };
    index
        .checked_sub(a.group_expr.len())
        .and_then(|i| a.aggr_expr.get(i))
        .and_then(aggregate_of)
        .is_some_and(|f| {
            matches!(f.func.name(), "min" | "max")
                && f.params.filter.is_none()
                && f.params.args.len() == 1
                && is_pseudonym_of(&a.input, &f.params.args[0])
        })
}

fn table_name(t: &datafusion::common::TableReference) -> String {
    match t.schema() {
        Some(schema) => format!("{schema}.{}", t.table()),
        None => t.table().to_string(),
    }
}

fn trace_expr(
    input: &LogicalPlan,
    expr: &Expr,
    below: bool,
    out: &mut ColumnLineage,
) -> Result<(), Unsupported> {
    let mut subquery = false;
    expr.apply(|e| {
        match e {
            Expr::ScalarFunction(f) => {
                out.functions.insert(f.name().to_string());
            }
            // A subquery's values would reach the output untraced (the rewrite does not
            // enter subqueries).
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => subquery = true,
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if subquery {
        return Err(unsupported("a subquery inside an output column"));
    }
    for c in expr.column_refs() {
        let i = input
            .schema()
            .index_of_column(c)
            .map_err(|_| unsupported(format!("column {c} cannot be followed")))?;
        trace_column(input, i, below, out)?;
    }
    Ok(())
}

/// Cells of several groupings in one result: their lineage is not followed.
fn refuse_grouping_sets(a: &Aggregate) -> Result<(), Unsupported> {
    if a.group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Err(unsupported("GROUPING SETS, ROLLUP and CUBE"));
    }
    Ok(())
}

fn aggregate_of(expr: &Expr) -> Option<&AggregateFunction> {
    match expr {
        Expr::AggregateFunction(f) => Some(f),
        Expr::Alias(a) => aggregate_of(&a.expr),
        _ => None,
    }
}

/// Follows output column `index` of `plan` down to the view columns it comes from; `below`:
/// an aggregation was already passed on the way down.
fn trace_column(
    plan: &LogicalPlan,
    index: usize,
    below: bool,
    out: &mut ColumnLineage,
) -> Result<(), Unsupported> {
    if let Some((input, i)) = passed_through(plan, index) {
        return trace_column(input, i, below, out);
    }
    match plan {
        LogicalPlan::Projection(p) => trace_expr(&p.input, &p.expr[index], below, out),
        LogicalPlan::Join(_) => Err(unsupported("mark joins")),
        LogicalPlan::Aggregate(a) => {
            refuse_grouping_sets(a)?;
            let groups = a.group_expr.len();
            if index < groups {
                if !below {
                    out.roles.insert(Role::GroupKey);
                }
                return trace_expr(&a.input, &a.group_expr[index], true, out);
            }
            let expr = a
                .aggr_expr
                .get(index - groups)
                .ok_or_else(|| unsupported("aggregate output"))?;
            let f = aggregate_of(expr).ok_or_else(|| unsupported("aggregate expression"))?;
            let role = classify(f.func.name());
            if !below {
                out.roles.insert(role);
                out.aggregates.insert(expr.schema_name().to_string());
            }
            if role == Role::Count {
                // A count shows none of its argument's values.
                return Ok(());
            }
            trace_expr(&a.input, expr, true, out)
        }
        LogicalPlan::TableScan(t) => {
            let field = t.projected_schema.field(index);
            out.sources.insert(Source {
                table: table_name(&t.table_name),
                column: field.name().clone(),
            });
            Ok(())
        }
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => Ok(()),
        other => Err(unsupported_node(other)),
    }
}

/// Plans niji cannot yet follow or rewrite: their results are held.
fn unsupported_node(plan: &LogicalPlan) -> Unsupported {
    unsupported(match plan {
        LogicalPlan::Distinct(_) => "SELECT DISTINCT cannot be checked yet",
        LogicalPlan::Union(_) => "UNION cannot be checked yet",
        LogicalPlan::Window(_) => "window functions cannot be checked yet",
        LogicalPlan::Unnest(_) => "UNNEST cannot be checked yet",
        _ => "this kind of query cannot be checked yet",
    })
}

/// The input and input column that output column `index` of a node passing columns on
/// unchanged comes from (none for projections, aggregates, scans and mark joins).
fn passed_through(plan: &LogicalPlan, index: usize) -> Option<(&LogicalPlan, usize)> {
    match plan {
        LogicalPlan::Filter(f) => Some((&f.input, index)),
        LogicalPlan::Sort(s) => Some((&s.input, index)),
        LogicalPlan::Limit(l) => Some((&l.input, index)),
        LogicalPlan::SubqueryAlias(s) => Some((&s.input, index)),
        LogicalPlan::Repartition(r) => Some((&r.input, index)),
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti => Some((&j.left, index)),
                JoinType::RightSemi | JoinType::RightAnti => Some((&j.right, index)),
                JoinType::LeftMark | JoinType::RightMark => None,
                _ if index < left => Some((&j.left, index)),
                _ => Some((&j.right, index - left)),
            }
        }
        _ => None,
    }
}

/// Whether output column `index` of `plan` is a view's pseudonym column, unchanged (a column
/// merely named `pid` may be anything).
/// Whether `expr` is a plain column of `input` that is a view's pseudonym.
fn is_pseudonym_of(input: &LogicalPlan, expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => input
            .schema()
            .index_of_column(c)
            .is_ok_and(|i| is_view_pseudonym(input, i)),
        _ => false,
    }
}

/// The node that makes output column `index` of `plan`, and its column there: followed down
/// through nodes passing columns on and projections of a plain column. None where an outer
/// join comes between (it makes nulls of its own).
fn origin(plan: &LogicalPlan, index: usize) -> Option<(&LogicalPlan, usize)> {
    let (mut node, mut index) = (plan, index);
    loop {
        if let LogicalPlan::Join(j) = node
            && matches!(
                j.join_type,
                JoinType::Left | JoinType::Right | JoinType::Full
            )
        {
            return None;
        }
        if let Some(next) = passed_through(node, index) {
            (node, index) = next;
            continue;
        }
        match node {
            LogicalPlan::Projection(p) => match p.expr.get(index).map(unaliased) {
                Some(Expr::Column(c)) => {
                    index = p.input.schema().index_of_column(c).ok()?;
                    node = p.input.as_ref();
                }
                _ => return Some((node, index)),
            },
            _ => return Some((node, index)),
        }
    }
}

fn unaliased(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unaliased(&a.expr),
        other => other,
    }
}

fn is_view_pseudonym(plan: &LogicalPlan, index: usize) -> bool {
    match origin(plan, index) {
        Some((LogicalPlan::TableScan(t), index)) => {
            index < t.projected_schema.fields().len()
                && t.projected_schema.field(index).name() == niji_catalog::PSEUDONYM_COLUMN
        }
        // A group key that is the pseudonym (each group one person).
        Some((LogicalPlan::Aggregate(a), index)) => a
            .group_expr
            .get(index)
            .is_some_and(|g| is_pseudonym_of(&a.input, g)),
        // The pseudonym of the person a regrouped aggregation grouped by (no researcher's plan
        // can call the function: see [`Bounds::pseudonyms`]).
        Some((LogicalPlan::Projection(p), index)) => p.expr.get(index).is_some_and(|e| {
            matches!(unaliased(e), Expr::ScalarFunction(f)
                if f.func.name() == niji_catalog::PSEUDONYM_FUNCTION)
        }),
        _ => false,
    }
}

fn uncast(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => uncast(&a.expr),
        Expr::Cast(c) => uncast(&c.expr),
        Expr::TryCast(c) => uncast(&c.expr),
        other => other,
    }
}

/// A column as it is (perhaps cast): its nulls are the only rows it leaves out.
fn is_plain(e: &Expr) -> bool {
    matches!(uncast(e), Expr::Column(_))
}

/// The column `e` is, cast at most to types that hold each of its values (wider integers,
/// floats): a cast that rounds (a float to an integer) could take a person's contribution past
/// their stored total.
fn widened_column<'e>(e: &'e Expr, schema: &DFSchema) -> Option<&'e Column> {
    match e {
        Expr::Alias(a) => widened_column(&a.expr, schema),
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            let from = expr.get_type(schema).ok()?;
            widens(&from, field.data_type()).then(|| widened_column(expr, schema))?
        }
        Expr::Column(c) => Some(c),
        _ => None,
    }
}

/// Whether every value of `from` is one of `to` (floats: within rounding, which ceilings
/// allow for).
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::{Float16, Float32, Float64, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32};
    from == to
        || match to {
            Float64 => {
                from.is_integer() || matches!(from, Float16 | Float32 | DataType::Decimal128(..))
            }
            Float32 => matches!(from, Float16),
            Int64 => matches!(from, Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32),
            Int32 => matches!(from, Int8 | Int16 | UInt8 | UInt16),
            _ => false,
        }
}

/// The view and its column that output column `index` of `plan` is, where each row of the
/// view reaches `plan` at most once: through filters, sorts, limits, aliases, plain
/// projections and the kept side of semi and anti joins. None through anything else (a join
/// may repeat a row, and its value with it).
fn view_column(plan: &LogicalPlan, index: usize) -> Option<(&TableScan, &str)> {
    match plan {
        LogicalPlan::TableScan(t) => t
            .projected_schema
            .fields()
            .get(index)
            .map(|f| (t, f.name().as_str())),
        LogicalPlan::Join(j) => match j.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => view_column(&j.left, index),
            JoinType::RightSemi | JoinType::RightAnti => view_column(&j.right, index),
            _ => None,
        },
        LogicalPlan::Projection(p) => match p.expr.get(index).map(unaliased)? {
            Expr::Column(c) => view_column(&p.input, p.input.schema().index_of_column(c).ok()?),
            _ => None,
        },
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Repartition(_) => {
            let (input, i) = passed_through(plan, index)?;
            view_column(input, i)
        }
        _ => None,
    }
}

/// The view whose hidden column `name` the column `c` of `plan` is.
fn hidden_column_of<'p>(plan: &'p LogicalPlan, c: &Column, name: &str) -> Option<&'p TableScan> {
    let (view, column) = view_column(plan, plan.schema().index_of_column(c).ok()?)?;
    (column == name).then_some(view)
}

/// The filters on the rows reaching `plan` from its one view, written over the view's stored
/// columns, and the view's scan, where for each stratum (of the view's `stratified` columns)
/// all of its rows or none pass: nodes that pass rows on unchanged, and filters on stratified
/// columns only. None otherwise.
fn strata_filters<'p>(
    plan: &'p LogicalPlan,
    stratified: &BTreeSet<&str>,
) -> Option<(Vec<Expr>, &'p TableScan)> {
    match plan {
        LogicalPlan::Projection(p) => strata_filters(&p.input, stratified),
        LogicalPlan::Filter(f) => {
            let (mut filters, scan) = strata_filters(&f.input, stratified)?;
            filters.push(on_strata(&f.input, &f.predicate, stratified)?);
            Some((filters, scan))
        }
        LogicalPlan::Sort(s) if s.fetch.is_none() => strata_filters(&s.input, stratified),
        LogicalPlan::SubqueryAlias(s) => strata_filters(&s.input, stratified),
        LogicalPlan::Repartition(r) => strata_filters(&r.input, stratified),
        LogicalPlan::TableScan(t) if t.fetch.is_none() => {
            let filters = t
                .filters
                .iter()
                .map(|f| {
                    let stored = f
                        .column_refs()
                        .iter()
                        .all(|c| stratified.contains(c.name.as_str()));
                    (deterministic(f) && stored).then(|| unqualified(f))?
                })
                .collect::<Option<Vec<_>>>()?;
            Some((filters, t))
        }
        _ => None,
    }
}

/// `e` with its columns unqualified (a scan's filter, read on stored columns by name).
fn unqualified(e: &Expr) -> Option<Expr> {
    e.clone()
        .transform(|e| match e {
            Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                c.name,
            )))),
            e => Ok(Transformed::no(e)),
        })
        .ok()
        .map(|t| t.data)
}

/// Whether `e` gives the same value for the same row however often and whenever it is
/// computed, and reads nothing but the row: only immutable functions, no subquery, no outer
/// column.
fn deterministic(e: &Expr) -> bool {
    !e.is_volatile()
        && !e
            .exists(|e| {
                Ok(match e {
                    // Computed on the strata at planning, on the rows when run: `now()` is
                    // the same within a query, not between the two.
                    Expr::ScalarFunction(f) => {
                        f.func.signature().volatility != Volatility::Immutable
                    }
                    e => matches!(
                        e,
                        Expr::ScalarSubquery(_)
                            | Expr::Exists(_)
                            | Expr::InSubquery(_)
                            | Expr::OuterReferenceColumn(..)
                            | Expr::Placeholder(_)
                    ),
                })
            })
            .unwrap_or(true)
}

/// `e`, over `plan`, written over the stored columns of the view under it, where it is a
/// function of the view's stratified columns alone (so one value for all rows of a stratum).
/// None otherwise.
fn on_strata(plan: &LogicalPlan, e: &Expr, stratified: &BTreeSet<&str>) -> Option<Expr> {
    if !deterministic(e) {
        return None;
    }
    e.clone()
        .transform(|e| match e {
            Expr::Column(c) => plan
                .schema()
                .index_of_column(&c)
                .ok()
                .and_then(|i| column_on_strata(plan, i, stratified))
                .map(Transformed::yes)
                .ok_or_else(|| {
                    datafusion::common::DataFusionError::Plan(format!("{c} is not stratified"))
                }),
            e => Ok(Transformed::no(e)),
        })
        .ok()
        .map(|t| t.data)
}

fn column_on_strata(plan: &LogicalPlan, index: usize, stratified: &BTreeSet<&str>) -> Option<Expr> {
    match plan {
        LogicalPlan::Projection(p) => {
            on_strata(&p.input, unaliased(p.expr.get(index)?), stratified)
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Repartition(_) => {
            let (input, i) = passed_through(plan, index)?;
            column_on_strata(input, i, stratified)
        }
        LogicalPlan::TableScan(t) => t
            .projected_schema
            .fields()
            .get(index)
            .filter(|f| stratified.contains(f.name().as_str()))
            .map(|f| Expr::Column(Column::new_unqualified(f.name()))),
        _ => None,
    }
}

fn or_else(a: Option<Expr>, b: Expr) -> Expr {
    match a {
        Some(a) => a.or(b),
        None => b,
    }
}

/// Whether a CASE branch giving `e` adds nothing of the row to the aggregate: a NULL, or, where
/// `zero_adds_nothing` (sums, means, extremes; not counts), a 0.
fn adds_nothing(e: &Expr, zero_adds_nothing: bool) -> bool {
    match uncast(e) {
        Expr::Literal(v, _) => {
            v.is_null()
                || (zero_adds_nothing
                    && ScalarValue::new_zero(&v.data_type()).is_ok_and(|zero| zero == *v))
        }
        _ => false,
    }
}

/// The rows an aggregate's argument takes something of: not where it is null, and not where a
/// CASE gives what adds nothing (`CASE WHEN c THEN x ELSE 0 END` in a sum takes the rows of
/// `c`, as `FILTER (WHERE c)` would). The persons of those rows are the persons the aggregate
/// shows something of, whatever their values are.
fn rows_read(v: &Expr, zero_adds_nothing: bool) -> Expr {
    let Expr::Case(case) = uncast(v) else {
        return v.clone().is_not_null();
    };
    let reads_of =
        |e: &Expr| (!adds_nothing(e, zero_adds_nothing)).then(|| rows_read(e, zero_adds_nothing));
    // Whether an earlier branch was taken (its condition true, not null).
    let mut earlier: Option<Expr> = None;
    let mut reads: Option<Expr> = None;
    for (condition, then) in &case.when_then_expr {
        let taken = match &case.expr {
            Some(base) => base.as_ref().clone().eq(condition.as_ref().clone()),
            None => condition.as_ref().clone(),
        }
        .is_true();
        if let Some(read) = reads_of(then) {
            let here = match &earlier {
                Some(e) => (!e.clone()).and(taken.clone()),
                None => taken.clone(),
            };
            reads = Some(or_else(reads, here.and(read)));
        }
        earlier = Some(or_else(earlier, taken));
    }
    if let Some(read) = case.else_expr.as_deref().and_then(reads_of) {
        let here = match earlier {
            Some(e) => (!e).and(read),
            None => read,
        };
        reads = Some(or_else(reads, here));
    }
    reads.unwrap_or(lit(false))
}

/// Magnitudes sharing a person column and a filter, with their aggregates' names.
type Magnitudes = ((Column, Option<Box<Expr>>), Vec<(Expr, String)>);

struct Rewrite<'a> {
    set: Arc<AggregateUDF>,
    /// The person of a group grouped by the pseudonym.
    person: Arc<AggregateUDF>,
    /// Facilities are counted up to the largest minimum a rule asks for.
    facilities: Arc<AggregateUDF>,
    /// One facility of a group of one person (None: facilities are counted exactly).
    a_facility: Option<Arc<AggregateUDF>>,
    /// Whether `a_facility` was used.
    facilities_bounded: bool,
    contributions: Arc<AggregateUDF>,
    /// Sets and contributions of one person column in one pass, with bounds on the largest
    /// contributions (None: contributions are kept exactly, per person).
    cell: Option<Arc<AggregateUDF>>,
    /// Where bounded, the ceilings of view columns, which stand in for contributions summed
    /// per person, and the strata of views (empty where exact).
    bounds: &'a Bounds,
    ceiled: usize,
    stratified: usize,
    facility_cap: usize,
    next: usize,
    /// Hidden output name → the aggregates (by name) it belongs to, in its sections' order.
    names: BTreeMap<String, Vec<String>>,
    sums: BTreeSet<String>,
}

fn hidden_columns(plan: &LogicalPlan) -> Vec<(Column, DataType)> {
    plan.schema()
        .iter()
        .filter(|(_, f)| is_hidden(f.name()))
        .map(|(q, f)| (Column::new(q.cloned(), f.name()), f.data_type().clone()))
        .collect()
}

fn call(udaf: &Arc<AggregateUDF>, args: Vec<Expr>, filter: Option<Box<Expr>>) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        udaf.clone(),
        args,
        false,
        filter,
        Vec::new(),
        None,
    ))
}

impl Rewrite<'_> {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{}", self.next)
    }

    fn node(&mut self, node: LogicalPlan) -> Result<LogicalPlan, Unsupported> {
        Ok(match node {
            LogicalPlan::Projection(p) => {
                let mut exprs = p.expr;
                for (column, _) in hidden_columns(&p.input) {
                    if exprs
                        .iter()
                        .any(|e| matches!(e, Expr::Column(c) if *c == column))
                    {
                        continue;
                    }
                    // Person and facility columns of several sources meet in joins: each gets
                    // a name of its own. Per-aggregate columns are unique already.
                    let name = if column.name.starts_with(PERSON) {
                        self.fresh(PERSON)
                    } else if column.name.starts_with(FACILITY) {
                        self.fresh(FACILITY)
                    } else {
                        column.name.clone()
                    };
                    exprs.push(Expr::Column(column).alias(name));
                }
                LogicalPlan::Projection(Projection::try_new(exprs, p.input)?)
            }
            LogicalPlan::Aggregate(a) => self.aggregate(a)?,
            plan @ (LogicalPlan::Distinct(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Unnest(_)
            | LogicalPlan::Extension(_)
            | LogicalPlan::RecursiveQuery(_)) => return Err(unsupported_node(&plan)),
            other => other.recompute_schema()?,
        })
    }

    /// The set of persons behind `aggregate` (`f`) alone: those of the rows its filter keeps
    /// and `reads` (every such row when None) selects.
    fn own_persons(
        &mut self,
        aggregate: &str,
        person: &Column,
        ty: &DataType,
        reads: Option<Expr>,
        f: &AggregateFunction,
    ) -> Result<Expr, Unsupported> {
        let behind = match reads {
            Some(reads) => when(reads, Expr::Column(person.clone()))
                .otherwise(lit(ScalarValue::try_from(ty)?))?,
            None => Expr::Column(person.clone()),
        };
        let name = self.fresh(CELL_SET);
        self.names.insert(name.clone(), vec![aggregate.to_string()]);
        Ok(call(&self.set, vec![behind], f.params.filter.clone()).alias(name))
    }

    /// The ceilings of `values` (the magnitudes of `aggregates` over `input`, whose persons are
    /// `person`), where every one has a ceiling that bounds it: each is a column of the view
    /// `person` is of, widened at most, reaching the aggregation once per row of the view, and
    /// a sum's column has no zero (whose persons would contribute nothing and still be in the
    /// group's set).
    fn ceilings_of(
        &self,
        input: &LogicalPlan,
        person: &Column,
        values: &[Expr],
        aggregates: &[String],
    ) -> Option<Vec<Vec<f64>>> {
        if self.bounds.ceilings.is_empty() {
            return None;
        }
        let schema = input.schema();
        let (person_view, person_column) =
            view_column(input, schema.index_of_column(person).ok()?)?;
        if person_column != PERSON {
            return None;
        }
        values
            .iter()
            .zip(aggregates)
            .map(|(v, aggregate)| {
                let column = widened_column(v, schema)?;
                let (view, name) = view_column(input, schema.index_of_column(column).ok()?)?;
                if !std::ptr::eq(view, person_view) {
                    return None;
                }
                let source = Source {
                    table: table_name(&view.table_name),
                    column: name.to_string(),
                };
                let ceiling = self.bounds.ceilings.get(&source)?;
                (!ceiling.zeros || !self.sums.contains(aggregate)).then(|| ceiling.largest.clone())
            })
            .collect()
    }

    /// Where `a` is grouped by the pseudonym of `person`'s view, read from the same rows as
    /// `person`: which group key it is, that key's column, and the view's pseudonym function
    /// (see [`Bounds::pseudonyms`]).
    fn pseudonym_key(
        &self,
        a: &Aggregate,
        person: &Column,
    ) -> Option<(usize, Column, datafusion::logical_expr::ScalarUDF)> {
        let input = a.input.as_ref();
        let view = hidden_column_of(input, person, PERSON)?;
        let (key, column) = a.group_expr.iter().enumerate().find_map(|(key, g)| {
            let Expr::Column(c) = g else { return None };
            let index = input.schema().index_of_column(c).ok()?;
            matches!(origin(input, index), Some((LogicalPlan::TableScan(t), i))
                if std::ptr::eq(t, view)
                    && t.projected_schema.field(i).name() == niji_catalog::PSEUDONYM_COLUMN)
            .then(|| (key, c.clone()))
        })?;
        let udf = self.bounds.pseudonyms.get(&table_name(&view.table_name))?;
        Some((key, column, udf.clone()))
    }

    /// The strata of the view of `facility` where a group of one `person` reading it reads
    /// all of the person's rows (grouped by the pseudonym alone, the view's rows all of the
    /// table's, and nothing between filtering them), so that a facility of the person's stored
    /// rows is one of the group's.
    fn facilities_of_persons(
        &self,
        input: &LogicalPlan,
        group_keys: usize,
        person: &Column,
        facility: &Column,
    ) -> Option<Arc<Strata>> {
        let view = hidden_column_of(input, facility, FACILITY)?;
        let strata = self.bounds.strata.get(&table_name(&view.table_name))?;
        // Another key beside the pseudonym leaves a group some of the person's rows only.
        if group_keys != 1 {
            return None;
        }
        let (filters, scan) = strata_filters(input, &BTreeSet::new())?;
        let same_view =
            hidden_column_of(input, person, PERSON).is_some_and(|v| std::ptr::eq(v, view));
        (same_view
            && filters.is_empty()
            && std::ptr::eq(scan, view)
            && !strata.a_facility.is_empty())
        .then(|| strata.clone())
    }

    /// `a` with its cells taken from the strata of the view it reads, where every cell is a
    /// union of whole strata and its checks need nothing else: one view, read through nodes
    /// that pass rows unchanged, filtered and grouped on stratified columns only (every row of
    /// a stratum then falls in one cell, or none), and aggregates that are counts of every row
    /// or magnitudes whose contributions the ceilings bound. Which strata a cell has, its keys
    /// and the filters tell, computed on the strata's values; the aggregation itself is the
    /// researcher's, unchanged. None: `a` is rewritten as usual.
    fn stratified_aggregate(&mut self, a: &Aggregate) -> Result<Option<LogicalPlan>, Unsupported> {
        if self.bounds.strata.is_empty() {
            return Ok(None);
        }
        let input = a.input.as_ref();
        let schema = input.schema();
        let hidden = hidden_columns(input);
        let of = |prefix: &str| -> Vec<&Column> {
            hidden
                .iter()
                .filter(|(c, _)| c.name.starts_with(prefix))
                .map(|(c, _)| c)
                .collect()
        };
        let (persons, facilities) = (of(PERSON), of(FACILITY));
        let [person] = persons.as_slice() else {
            return Ok(None);
        };
        if facilities.len() > 1 || a.group_expr.iter().any(|g| is_pseudonym_of(input, g)) {
            return Ok(None);
        }
        let Some(view) = hidden_column_of(input, person, PERSON) else {
            return Ok(None);
        };
        let Some(strata) = self
            .bounds
            .strata
            .get(&table_name(&view.table_name))
            .cloned()
        else {
            return Ok(None);
        };
        let same_view = |c: &Column, name: &str| {
            hidden_column_of(input, c, name).is_some_and(|v| std::ptr::eq(v, view))
        };
        if !facilities.iter().all(|f| same_view(f, FACILITY)) {
            return Ok(None);
        }
        let columns = strata.columns();
        let stratified: BTreeSet<&str> = columns.iter().map(String::as_str).collect();
        let Some((filters, scan)) = strata_filters(input, &stratified) else {
            return Ok(None);
        };
        let Some(keys) = a
            .group_expr
            .iter()
            .map(|g| on_strata(input, g, &stratified))
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(None);
        };
        if !std::ptr::eq(scan, view) {
            return Ok(None);
        }
        let mut values = Vec::new();
        let mut aggregates = Vec::new();
        for expr in &a.aggr_expr {
            let Some(f) = aggregate_of(expr) else {
                return Ok(None);
            };
            if f.params.filter.is_some() || f.params.args.len() > 1 {
                return Ok(None);
            }
            let name = expr.schema_name().to_string();
            let value = f
                .params
                .args
                .first()
                .filter(|e| !matches!(e, Expr::Literal(..)))
                .cloned();
            match classify(f.func.name()) {
                Role::Count if value.as_ref().is_none_or(|v| is_pseudonym_of(input, v)) => {}
                Role::Magnitude
                    if !f.params.distinct
                        && value.as_ref().is_some_and(|v| {
                            is_plain(v) && v.nullable(schema.as_ref()).is_ok_and(|n| !n)
                        }) =>
                {
                    if let Some(v) = value {
                        values.push(cast(v, DataType::Float64));
                    }
                    if f.func.name() == "sum" {
                        self.sums.insert(name.clone());
                    }
                    aggregates.push(name);
                }
                _ => return Ok(None),
            }
        }
        let mut cells = Vec::new();
        if !values.is_empty() {
            let Some(ceilings) = self.ceilings_of(input, person, &values, &aggregates) else {
                return Ok(None);
            };
            for (v, largest) in values.iter().zip(ceilings) {
                let column = widened_column(v, schema)
                    .and_then(|c| schema.index_of_column(c).ok())
                    .and_then(|i| view_column(input, i));
                match column {
                    Some((_, name)) if strata.totals.contains_key(name) => {
                        cells.push((name.to_string(), largest));
                    }
                    _ => return Ok(None),
                }
            }
        }
        let aggregate = LogicalPlan::Aggregate(a.clone());
        let outputs = aggregate.schema().columns();
        let group_columns: Vec<Expr> = outputs
            .iter()
            .take(a.group_expr.len())
            .cloned()
            .map(Expr::Column)
            .collect();
        let key_types: Vec<DataType> = aggregate
            .schema()
            .fields()
            .iter()
            .take(a.group_expr.len())
            .map(|f| f.data_type().clone())
            .collect();
        let Some(keyed) = KeyedStrata::compute(
            &strata,
            view.source.schema().as_ref(),
            conjunction(filters),
            keys,
            &key_types,
        ) else {
            return Ok(None);
        };
        // The hidden columns the exact shadow has, named and ordered as it names and orders
        // them (output review reads a result by the exact shadow): the sets in the order of
        // their columns, then the contributions.
        let mut hidden_out: Vec<(&'static str, String)> = Vec::new();
        for (column, _) in &hidden {
            if column == *person {
                hidden_out.push((CELL_PERSONS, self.fresh(PERSON)));
            } else if column.name.starts_with(FACILITY) {
                hidden_out.push((CELL_FACILITIES, self.fresh(FACILITY)));
            }
        }
        if !values.is_empty() {
            let name = self.fresh(CONTRIBUTION);
            self.ceiled += values.len();
            self.names.insert(name.clone(), aggregates);
            hidden_out.push((CELL_CONTRIBUTIONS, name));
        }
        let strata_name = hidden_out
            .iter()
            .find(|(field, _)| *field == CELL_PERSONS)
            .map(|(_, name)| name.replacen(PERSON, STRATA, 1))
            .ok_or_else(|| unsupported("a stratified aggregation without its person set"))?;
        let udf = strata_udf(
            StrataCells {
                strata,
                facility_cap: self.facility_cap.clamp(1, MAX_FEW),
                values: cells,
            },
            keyed,
        );
        let keys = if group_columns.is_empty() {
            vec![lit(true)]
        } else {
            group_columns
        };
        // The cells in a projection of their own, read by field after: each is built once.
        let with_cells: Vec<Expr> = outputs
            .iter()
            .cloned()
            .map(Expr::Column)
            .chain([udf.call(keys).alias(&strata_name)])
            .collect();
        let with_cells =
            LogicalPlan::Projection(Projection::try_new(with_cells, Arc::new(aggregate))?);
        let cell = Expr::Column(Column::new_unqualified(&strata_name));
        let exprs: Vec<Expr> =
            outputs
                .into_iter()
                .map(Expr::Column)
                .chain(hidden_out.into_iter().map(|(field, name)| {
                    cell_field_udf(field).call(vec![cell.clone()]).alias(name)
                }))
                .collect();
        self.stratified += 1;
        Ok(Some(LogicalPlan::Projection(Projection::try_new(
            exprs,
            Arc::new(with_cells),
        )?)))
    }

    fn aggregate(&mut self, a: Aggregate) -> Result<LogicalPlan, Unsupported> {
        refuse_grouping_sets(&a)?;
        if let Some(stratified) = self.stratified_aggregate(&a)? {
            return Ok(stratified);
        }
        let mut aggr = a.aggr_expr.clone();
        let hidden = hidden_columns(&a.input);
        // Grouped by the pseudonym of the only person source: each group is one person, whose
        // index goes on as a value of the group, not as a set per group.
        let person_columns: Vec<&(Column, DataType)> = hidden
            .iter()
            .filter(|(c, _)| c.name.starts_with(PERSON))
            .collect();
        let per_person = match person_columns.as_slice() {
            [(person, DataType::UInt32)] => a
                .group_expr
                .iter()
                .any(|g| is_pseudonym_of(&a.input, g))
                .then(|| person.clone()),
            _ => None,
        };
        // Grouped by the person in place of the pseudonym, which is mapped from it after.
        let regrouped = per_person
            .as_ref()
            .and_then(|person| self.pseudonym_key(&a, person));
        let mut group_expr = a.group_expr.clone();
        if let (Some((key, _, _)), Some(person)) = (&regrouped, &per_person) {
            group_expr[*key] = Expr::Column(person.clone());
        }
        let mut persons = Vec::new();
        // Where each person column's set is in `aggr`, and its name.
        let mut sets: Vec<(Column, usize, String)> = Vec::new();
        // Columns computed from the aggregation's own (each before the aggregate it precedes
        // in `aggr`): a regrouped aggregation's person, a person's facility, looked up.
        let mut looked_up: Vec<(usize, Expr)> = Vec::new();
        for (column, ty) in hidden {
            if per_person.as_ref() == Some(&column) {
                persons.push((column.clone(), ty));
                let name = column.name.clone();
                if regrouped.is_some() {
                    looked_up.push((aggr.len(), Expr::Column(column).alias(name)));
                } else {
                    aggr.push(call(&self.person, vec![Expr::Column(column)], None).alias(name));
                }
                continue;
            }
            let indexes = ty == DataType::UInt32;
            let (prefix, udaf) = if column.name.starts_with(PERSON) {
                persons.push((column.clone(), ty));
                (PERSON, self.set.clone())
            } else if column.name.starts_with(FACILITY) {
                // A group of one person is never a released cell (its person shows, and
                // the result is held), only part of an outer one.
                let one = match (&per_person, &ty) {
                    (Some(_), DataType::UInt32) => self.a_facility.clone(),
                    _ => None,
                };
                match (one, &per_person) {
                    (Some(one), Some(person)) => {
                        self.facilities_bounded = true;
                        if let Some(strata) = self.facilities_of_persons(
                            &a.input,
                            a.group_expr.len(),
                            person,
                            &column,
                        ) {
                            let person = Expr::Column(Column::new_unqualified(&person.name));
                            let facility = facility_of_udf(strata).call(vec![person]);
                            looked_up.push((aggr.len(), facility.alias(self.fresh(FACILITY))));
                            continue;
                        }
                        (FACILITY, one)
                    }
                    _ => (FACILITY, self.facilities.clone()),
                }
            } else {
                // An inner aggregate's per-aggregate columns end here.
                continue;
            };
            let name = self.fresh(prefix);
            if prefix == PERSON && indexes {
                sets.push((column.clone(), aggr.len(), name.clone()));
            }
            aggr.push(call(&udaf, vec![Expr::Column(column)], None).alias(name));
        }
        let mut magnitudes: Vec<Magnitudes> = Vec::new();
        for expr in &a.aggr_expr {
            let Some(f) = aggregate_of(expr) else {
                return Err(unsupported("aggregate expression"));
            };
            let aggregate = expr.schema_name().to_string();
            let role = classify(f.func.name());
            // Only the first argument's rows are followed: a second one (count(1, x) counts
            // the rows where x is not null) would choose rows unseen.
            if f.params.args.len() > 1 {
                return Err(unsupported(format!(
                    "{}() of several arguments: the rows it reads cannot be told",
                    f.func.name()
                )));
            }
            // Contributions are summed over rows; a sum of distinct values is not that sum.
            if role == Role::Magnitude && f.params.distinct {
                return Err(unsupported(format!(
                    "{}(DISTINCT …): its contributions cannot be bounded",
                    f.func.name()
                )));
            }
            let value = f
                .params
                .args
                .first()
                .or(f.params.order_by.first().map(|s| &s.expr))
                .filter(|e| !matches!(e, Expr::Literal(..)))
                .cloned();
            for (person, ty) in &persons {
                let contributions = role == Role::Magnitude && *ty == DataType::UInt32;
                if contributions && let Some(v) = &value {
                    // Per-person sums: also the persons this magnitude rests on (those
                    // contributing anything), so no set of its own is needed. Magnitudes of one
                    // person column and filter share one pass over a per-person map.
                    let key = (person.clone(), f.params.filter.clone());
                    let at = match magnitudes.iter().position(|(k, _)| *k == key) {
                        Some(at) => at,
                        None => {
                            magnitudes.push((key, Vec::new()));
                            magnitudes.len() - 1
                        }
                    };
                    magnitudes[at]
                        .1
                        .push((cast(v.clone(), DataType::Float64), aggregate.clone()));
                    if f.func.name() == "sum" {
                        self.sums.insert(aggregate.clone());
                    }
                    // A plain column's nulls add nothing, so the group's persons serve; an
                    // expression (a CASE with ELSE 0) may leave persons out by value.
                    if !is_plain(v) {
                        let reads = rows_read(v, true);
                        aggr.push(self.own_persons(&aggregate, person, ty, Some(reads), f)?);
                    }
                    continue;
                }
                // The persons behind this aggregate: rows it counts or takes a value from. Where
                // that is every row of the group (no argument, or the pseudonym, which is null
                // exactly where the person is unknown), the group's set serves.
                let every_row = value.as_ref().is_none_or(|v| is_pseudonym_of(&a.input, v));
                if every_row && f.params.filter.is_none() {
                    continue;
                }
                let reads = value.as_ref().map(|v| rows_read(v, role != Role::Count));
                aggr.push(self.own_persons(&aggregate, person, ty, reads, f)?);
            }
        }
        // The cell columns, and what follows the aggregation's own columns: contributions, in
        // the same order and with the same names as without cells, so that a result checked
        // on either shadow has the shape of both.
        let mut cells: BTreeMap<String, String> = BTreeMap::new();
        let mut tail: Vec<(String, Expr)> = Vec::new();
        for ((person, filter), values) in magnitudes {
            let name = self.fresh(CONTRIBUTION);
            // A value that may be null or is computed (a CASE with ELSE 0) leaves persons who
            // add nothing, whom bounds cannot tell apart over several runs (a recheck every
            // time): those stay exact.
            let dense = values.iter().all(|(v, _)| {
                is_plain(v) && v.nullable(a.input.schema().as_ref()).is_ok_and(|n| !n)
            });
            let (values, aggregates): (Vec<Expr>, Vec<String>) = values.into_iter().unzip();
            let ceilings = self.ceilings_of(&a.input, &person, &values, &aggregates);
            self.names.insert(name.clone(), aggregates);
            let args = std::iter::once(Expr::Column(person.clone()))
                .chain(values)
                .collect();
            // Every row of the group adds to these contributions: the group's set comes in
            // the same pass, with the values' totals where ceilings bound the largest
            // contributions, else with each run's largest per-person sums.
            let set = sets.iter().find(|(c, _, _)| *c == person);
            if let (Some(cell), Some((_, at, set_name)), None, true) =
                (&self.cell, set, &filter, dense)
            {
                let cell = match ceilings {
                    Some(largest) => {
                        self.ceiled += largest.len();
                        Arc::new(ceiled_udaf(&largest))
                    }
                    None => cell.clone(),
                };
                let cell_name = set_name.replacen(PERSON, CELL, 1);
                aggr[*at] = call(&cell, args, None).alias(cell_name.clone());
                let cell_column = Expr::Column(Column::new_unqualified(&cell_name));
                let field = cell_field_udf(CELL_CONTRIBUTIONS).call(vec![cell_column]);
                tail.push((name.clone(), field.alias(name)));
                cells.insert(cell_name, set_name.clone());
                continue;
            }
            aggr.push(call(&self.contributions, args, filter).alias(name.clone()));
            tail.push((name.clone(), Expr::Column(Column::new_unqualified(&name))));
        }
        let groups = a.group_expr.len();
        let aggregates = aggr.len();
        let mut aggregate = LogicalPlan::Aggregate(Aggregate::try_new(a.input, group_expr, aggr)?);
        if !looked_up.is_empty() {
            let mut columns = aggregate.schema().columns().into_iter().map(Expr::Column);
            let mut exprs: Vec<Expr> = columns.by_ref().take(groups).collect();
            if let Some((key, researchers_key, pseudonym)) = regrouped {
                exprs[key] = pseudonym
                    .call(vec![exprs[key].clone()])
                    .alias_qualified(researchers_key.relation, researchers_key.name);
            }
            let mut looked_up = looked_up.into_iter().peekable();
            for at in 0..=aggregates {
                while let Some((_, e)) = looked_up.next_if(|(before, _)| *before == at) {
                    exprs.push(e);
                }
                exprs.extend(columns.next());
            }
            aggregate = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(aggregate))?);
        }
        if cells.is_empty() {
            return Ok(aggregate);
        }
        let tail_names: BTreeSet<String> = tail.iter().map(|(name, _)| name.clone()).collect();
        let exprs: Vec<Expr> = aggregate
            .schema()
            .columns()
            .into_iter()
            .filter(|column| !tail_names.contains(&column.name))
            .map(|column| match cells.get(&column.name) {
                Some(set) => cell_field_udf(CELL_PERSONS)
                    .call(vec![Expr::Column(column)])
                    .alias(set),
                None => Expr::Column(column),
            })
            .chain(tail.into_iter().map(|(_, expr)| expr))
            .collect();
        Ok(LogicalPlan::Projection(Projection::try_new(
            exprs,
            Arc::new(aggregate),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strata::STRATA_FUNCTION;
    use arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    /// The shadow of `sql` over a view of receipts as the shadow catalog has it: the person
    /// index and the facility mark beside never-null points and doses and nullable days,
    /// bounded (with `ceilings`) and exact.
    async fn shadows(sql: &str, ceilings: &Ceilings) -> (Shadow, Shadow) {
        let bounds = Bounds {
            ceilings: ceilings.clone(),
            ..Bounds::default()
        };
        bounded_and_exact(sql, &bounds).await
    }

    /// The bounded and the exact shadow of `sql` over `receipts`, which have the same shape.
    async fn bounded_and_exact(sql: &str, bounds: &Bounds) -> (Shadow, Shadow) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("prefecture", DataType::Utf8, false),
            Field::new("setting", DataType::Int32, false),
            Field::new("points", DataType::Int64, false),
            Field::new("dose", DataType::Float64, false),
            Field::new("days", DataType::Int32, true),
            Field::new(PERSON, DataType::UInt32, true),
            Field::new(FACILITY, DataType::UInt32, false),
        ]));
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![vec![]]).expect("table");
        ctx.register_table("receipts", Arc::new(table))
            .expect("register");
        let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
        let visible = plan.schema().as_arrow().clone();
        let bounded = shadow(plan.clone(), &visible, 3, Some(bounds)).expect("bounded shadow");
        let exact = shadow(plan, &visible, 3, None).expect("exact shadow");
        assert_same_shape(&bounded, &exact, sql);
        (bounded, exact)
    }

    /// Output review judges a result checked on the bounded shadow with the exact one: both
    /// must have the same columns, and the same bookkeeping of where sets and sections are.
    fn assert_same_shape(bounded: &Shadow, exact: &Shadow, sql: &str) {
        let fields = |s: &Shadow| -> Vec<(String, DataType, bool)> {
            s.plan
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
                .collect()
        };
        assert_eq!(fields(bounded), fields(exact), "{sql}");
        assert_eq!(bounded.person_sets, exact.person_sets, "{sql}");
        assert_eq!(bounded.contributions, exact.contributions, "{sql}");
        assert_eq!(bounded.cell_sets, exact.cell_sets, "{sql}");
    }

    fn uses(s: &Shadow, function: &str) -> bool {
        s.plan
            .display_indent()
            .to_string()
            .contains(&format!("{function}("))
    }

    fn uses_cells(s: &Shadow) -> bool {
        uses(s, crate::sets::CELL_FUNCTION)
    }

    /// Ceilings stand in for per-person sums only where they bound them: a view's column,
    /// widened at most, each of its rows once, and for a sum a column without zeros. A join,
    /// which may repeat a row (a self-join sums each person's points several times, past their
    /// stored total), a cast that rounds up (0.6 to 1) or a sum of a column with zeros (whose
    /// persons with nothing to add would pass for contributors) keeps the pass over persons.
    #[tokio::test]
    async fn ceilings_stand_in_only_where_they_bound_every_person_s_sum() {
        let ceiling = |zeros| niji_catalog::Ceiling {
            largest: vec![100.0, 50.0],
            zeros,
        };
        let ceilings: Ceilings = [("points", false), ("setting", true), ("dose", false)]
            .into_iter()
            .map(|(column, zeros)| {
                let source = Source {
                    table: "receipts".into(),
                    column: column.into(),
                };
                (source, ceiling(zeros))
            })
            .collect();
        for (sql, ceiled) in [
            (
                "SELECT prefecture, sum(points) AS s, avg(points) AS m FROM receipts GROUP BY prefecture",
                true,
            ),
            ("SELECT sum(dose) AS s FROM receipts", true),
            (
                "SELECT prefecture, avg(setting) AS m FROM receipts GROUP BY prefecture",
                true,
            ),
            (
                "SELECT prefecture, sum(points) AS s FROM (SELECT * FROM receipts WHERE setting = 1 ORDER BY points LIMIT 10) t GROUP BY prefecture",
                true,
            ),
            (
                "SELECT prefecture, sum(setting) AS s FROM receipts GROUP BY prefecture",
                false,
            ),
            (
                "SELECT prefecture, sum(CAST(dose AS BIGINT)) AS s FROM receipts GROUP BY prefecture",
                false,
            ),
            (
                "SELECT r.prefecture, sum(r.points) AS s FROM receipts r JOIN receipts o ON r.prefecture = o.prefecture GROUP BY r.prefecture",
                false,
            ),
        ] {
            let (bounded, exact) = shadows(sql, &ceilings).await;
            assert_eq!(
                uses(&bounded, crate::sets::CEILED_FUNCTION),
                ceiled,
                "{sql}"
            );
            assert!(!uses(&exact, crate::sets::CEILED_FUNCTION), "{sql}");
            // Without ceilings, the same plan takes the pass over persons.
            let (uncapped, _) = shadows(sql, &Ceilings::new()).await;
            assert!(!uses(&uncapped, crate::sets::CEILED_FUNCTION), "{sql}");
        }
    }

    /// Strata stand in for the persons, facilities and totals of cells only where every cell is
    /// a union of whole strata (one view, filtered and grouped on its stratified columns, no
    /// limit below the aggregation) and its aggregates are counts of every row or magnitudes
    /// the ceilings bound; elsewhere the rows are read. Either way the shadow has the exact
    /// one's shape.
    #[tokio::test]
    async fn strata_stand_in_only_where_every_cell_is_a_union_of_strata() {
        let ceilings: Ceilings = ["points", "days"]
            .into_iter()
            .map(|column| {
                let source = Source {
                    table: "receipts".into(),
                    column: column.into(),
                };
                let ceiling = niji_catalog::Ceiling {
                    largest: vec![100.0, 50.0],
                    zeros: false,
                };
                (source, ceiling)
            })
            .collect();
        let values = arrow::record_batch::RecordBatch::try_from_iter([
            (
                "prefecture",
                Arc::new(arrow::array::StringArray::from(vec!["13", "01"])) as _,
            ),
            (
                "setting",
                Arc::new(arrow::array::Int32Array::from(vec![1, 2])) as _,
            ),
        ])
        .expect("values");
        let strata = Strata {
            values,
            persons: vec![Default::default(); 2],
            facilities: vec![Default::default(); 2],
            totals: [("points".to_string(), vec![0.0; 2])].into(),
            a_facility: vec![3, 4],
        };
        let bounds = Bounds {
            ceilings,
            strata: [("receipts".to_string(), Arc::new(strata))].into(),
            ..Bounds::default()
        };
        for (sql, stratified) in [
            (
                "SELECT prefecture, setting, count(*) AS n, sum(points) AS s FROM receipts GROUP BY prefecture, setting",
                true,
            ),
            (
                "SELECT substr(prefecture, 1, 1) AS p, count(*) AS n FROM receipts WHERE setting = 1 GROUP BY substr(prefecture, 1, 1)",
                true,
            ),
            (
                "SELECT count(*) AS n FROM receipts WHERE prefecture <> '13'",
                true,
            ),
            (
                "SELECT prefecture, count(*) AS n FROM (SELECT * FROM receipts WHERE setting = 2) t GROUP BY prefecture ORDER BY n DESC LIMIT 3",
                true,
            ),
            // A filter or a key that is not stratified splits strata.
            (
                "SELECT prefecture, count(*) AS n FROM receipts WHERE points > 10 GROUP BY prefecture",
                false,
            ),
            (
                "SELECT days, count(*) AS n FROM receipts GROUP BY days",
                false,
            ),
            (
                "SELECT prefecture, count(*) AS n FROM receipts GROUP BY prefecture, random() > 0.5",
                false,
            ),
            (
                "SELECT prefecture, count(*) AS n FROM receipts WHERE now() > to_timestamp('2020-01-01') GROUP BY prefecture",
                false,
            ),
            // So do a limit below the aggregation and a join.
            (
                "SELECT prefecture, count(*) AS n FROM (SELECT * FROM receipts LIMIT 10) t GROUP BY prefecture",
                false,
            ),
            (
                "SELECT r.prefecture, count(*) AS n FROM receipts r JOIN receipts o ON r.setting = o.setting GROUP BY r.prefecture",
                false,
            ),
            // Aggregates whose persons are not every row's, or a magnitude without strata
            // totals or ceilings, or a minimum.
            (
                "SELECT prefecture, count(*) FILTER (WHERE setting = 1) AS n FROM receipts GROUP BY prefecture",
                false,
            ),
            (
                "SELECT prefecture, count(days) AS n FROM receipts GROUP BY prefecture",
                false,
            ),
            (
                "SELECT prefecture, sum(days) AS s FROM receipts GROUP BY prefecture",
                false,
            ),
            (
                "SELECT prefecture, sum(dose) AS s FROM receipts GROUP BY prefecture",
                false,
            ),
            (
                "SELECT prefecture, min(points) AS lo FROM receipts GROUP BY prefecture",
                false,
            ),
        ] {
            let (bounded, exact) = bounded_and_exact(sql, &bounds).await;
            assert_eq!(uses(&bounded, STRATA_FUNCTION), stratified, "{sql}");
            assert_eq!(bounded.stratified, usize::from(stratified), "{sql}");
            assert!(!uses(&exact, STRATA_FUNCTION), "{sql}");
        }
    }

    /// Groups of one person reading all of the person's rows take the person's facility from
    /// the strata (no row's facility read); a filter between them and the view, or a table
    /// without strata, leaves them reading it. Either way the shadow has the exact one's shape.
    #[tokio::test]
    async fn a_person_s_facility_is_looked_up_where_the_group_reads_all_of_the_person_s_rows() {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("prefecture", DataType::Utf8, false),
            Field::new(niji_catalog::PSEUDONYM_COLUMN, DataType::UInt64, true),
            Field::new(PERSON, DataType::UInt32, true),
            Field::new(FACILITY, DataType::UInt32, true),
        ]));
        let table = MemTable::try_new(schema, vec![vec![]]).expect("table");
        ctx.register_table("receipts", Arc::new(table))
            .expect("register");
        let values = arrow::record_batch::RecordBatch::try_from_iter([(
            "prefecture",
            Arc::new(arrow::array::StringArray::from(vec!["13"])) as _,
        )])
        .expect("values");
        let strata = Strata {
            values,
            persons: vec![Default::default()],
            facilities: vec![Default::default()],
            totals: BTreeMap::new(),
            a_facility: vec![3],
        };
        let with_strata = Bounds {
            strata: [("receipts".to_string(), Arc::new(strata))].into(),
            pseudonyms: [("receipts".to_string(), test_pseudonyms())].into(),
            ..Bounds::default()
        };
        let per_person = "SELECT n, count(*) AS persons FROM (SELECT pid, count(*) AS n FROM receipts GROUP BY pid) t GROUP BY n";
        for (sql, bounds, looked_up) in [
            (per_person, &with_strata, true),
            (
                "SELECT n, count(*) AS persons FROM (SELECT pid, count(*) AS n FROM receipts WHERE prefecture = '13' GROUP BY pid) t GROUP BY n",
                &with_strata,
                false,
            ),
            (per_person, &Bounds::default(), false),
            (
                "SELECT prefecture, count(*) AS persons FROM (SELECT pid, prefecture, count(*) AS n FROM receipts GROUP BY pid, prefecture) t GROUP BY prefecture",
                &with_strata,
                false,
            ),
        ] {
            let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
            let visible = plan.schema().as_arrow().clone();
            let bounded = shadow(plan.clone(), &visible, 3, Some(bounds)).expect("bounded");
            let exact = shadow(plan, &visible, 3, None).expect("exact");
            assert_same_shape(&bounded, &exact, sql);
            assert!(bounded.facilities_bounded, "{sql}");
            assert_eq!(
                uses(&bounded, crate::strata::FACILITY_OF_FUNCTION),
                looked_up,
                "{sql}"
            );
            assert_eq!(
                uses(&bounded, crate::sets::A_FACILITY_FUNCTION),
                !looked_up,
                "{sql}"
            );
        }
    }

    /// A stand-in for a project's pseudonym of a person, one to one with persons.
    fn test_pseudonym(person: u32) -> u64 {
        7919 * u64::from(person) + 1
    }

    /// [`test_pseudonym`] as the view's pseudonym function.
    fn test_pseudonyms() -> datafusion::logical_expr::ScalarUDF {
        use arrow::array::{Array, UInt32Array, UInt64Array};
        use datafusion::logical_expr::{ColumnarValue, create_udf};
        create_udf(
            niji_catalog::PSEUDONYM_FUNCTION,
            vec![DataType::UInt32],
            DataType::UInt64,
            Volatility::Immutable,
            Arc::new(|args: &[ColumnarValue]| {
                let persons = ColumnarValue::values_to_arrays(args)?;
                let persons = persons[0].as_any().downcast_ref::<UInt32Array>().cloned();
                let persons = persons.expect("person indexes");
                let pseudonyms: UInt64Array =
                    persons.iter().map(|p| p.map(test_pseudonym)).collect();
                Ok(ColumnarValue::Array(Arc::new(pseudonyms)))
            }),
        )
    }

    /// An aggregation grouped by the pseudonym groups by the person where the view's pseudonyms
    /// are known, and maps each group's person to its pseudonym after: run on rows, it has the
    /// exact shadow's groups, values and person sets, the pseudonyms it shows included (one
    /// group for the rows without a person, as the pseudonym's nulls make), and outer
    /// aggregations still see the pseudonym in what it maps.
    #[tokio::test]
    async fn grouped_by_the_person_a_shadow_has_the_groups_of_the_pseudonym() {
        use arrow::array::{StringArray, UInt32Array, UInt64Array};
        let persons: Vec<Option<u32>> = [0, 0, 1, 2, 2, 2, 3, 4, 4, 5]
            .into_iter()
            .map(Some)
            .chain([None, None])
            .collect();
        let prefectures: Vec<&str> = (0..persons.len())
            .map(|i| if i % 3 == 0 { "13" } else { "27" })
            .collect();
        let pseudonyms: UInt64Array = persons.iter().map(|p| p.map(test_pseudonym)).collect();
        let facilities: UInt32Array = (0..persons.len() as u32).map(|i| Some(i % 4)).collect();
        let rows = arrow::record_batch::RecordBatch::try_from_iter([
            ("prefecture", Arc::new(StringArray::from(prefectures)) as _),
            (niji_catalog::PSEUDONYM_COLUMN, Arc::new(pseudonyms) as _),
            (PERSON, Arc::new(UInt32Array::from(persons)) as _),
            (FACILITY, Arc::new(facilities) as _),
        ])
        .expect("rows");
        let ctx = SessionContext::new();
        let table = MemTable::try_new(rows.schema(), vec![vec![rows]]).expect("table");
        ctx.register_table("receipts", Arc::new(table))
            .expect("register");
        let bounds = Bounds {
            pseudonyms: [("receipts".to_string(), test_pseudonyms())].into(),
            ..Bounds::default()
        };
        // Whether every aggregation grouped by the pseudonym is regrouped: one over another's
        // groups reads persons that are not a view's and keeps them as values.
        for (sql, every_one) in [
            (
                "SELECT n, count(*) AS persons FROM (SELECT pid, count(*) AS n FROM receipts GROUP BY pid) t GROUP BY n ORDER BY n",
                true,
            ),
            (
                "SELECT pid, count(*) AS n FROM receipts GROUP BY pid ORDER BY pid",
                true,
            ),
            (
                "SELECT prefecture, count(*) AS persons FROM (SELECT pid, prefecture, count(*) AS n FROM receipts GROUP BY pid, prefecture) t GROUP BY prefecture ORDER BY prefecture",
                true,
            ),
            (
                "SELECT count(DISTINCT pid) AS persons, sum(n) AS receipts FROM (SELECT pid, count(*) AS n FROM receipts GROUP BY pid) t",
                true,
            ),
            (
                "SELECT m, count(*) AS persons FROM (SELECT pid, max(n) AS m FROM (SELECT pid, prefecture, count(*) AS n FROM receipts GROUP BY pid, prefecture) u GROUP BY pid) t GROUP BY m ORDER BY m",
                false,
            ),
        ] {
            let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
            let visible = plan.schema().as_arrow().clone();
            let bounded = shadow(plan.clone(), &visible, 3, Some(&bounds)).expect("bounded");
            let exact = shadow(plan, &visible, 3, None).expect("exact");
            // (An outermost group of one person hands on one facility, not a set: its shape
            // is the exact shadow's but for that.)
            assert_eq!(bounded.person_sets, exact.person_sets, "{sql}");
            assert!(uses(&bounded, niji_catalog::PSEUDONYM_FUNCTION), "{sql}");
            assert_eq!(
                uses(&bounded, crate::sets::PERSON_FUNCTION),
                !every_one,
                "{sql}"
            );
            assert!(uses(&exact, crate::sets::PERSON_FUNCTION), "{sql}");
            let run = |s: &Shadow| {
                let df = ctx.execute_logical_plan(s.plan.clone());
                async move {
                    let batches = df.await.expect("shadow plan").collect().await;
                    let batches = batches.expect("shadow result");
                    let schema = batches[0].schema();
                    arrow::compute::concat_batches(&schema, &batches).expect("one batch")
                }
            };
            let (regrouped, grouped) = (run(&bounded).await, run(&exact).await);
            let compared: Vec<usize> = (0..visible.fields().len())
                .chain(exact.person_sets.iter().copied())
                .collect();
            for i in compared {
                assert_eq!(
                    regrouped.column(i),
                    grouped.column(i),
                    "column {i} of {sql}"
                );
            }
        }
    }

    /// A second argument chooses rows the shadow does not follow (`count(1, x)` counts rows
    /// where x is not null), and a sum of distinct values is not the sum of its contributions:
    /// neither has a shadow, bounded or exact, so the result is held.
    #[tokio::test]
    async fn aggregates_reading_rows_unseen_have_no_shadow() {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("prefecture", DataType::Utf8, false),
            Field::new("points", DataType::Int64, false),
            Field::new(PERSON, DataType::UInt32, true),
        ]));
        let table = MemTable::try_new(schema, vec![vec![]]).expect("table");
        ctx.register_table("receipts", Arc::new(table))
            .expect("register");
        for sql in [
            "SELECT prefecture, count(1, CASE WHEN points > 100 THEN 1 END) AS n FROM receipts GROUP BY prefecture",
            "SELECT prefecture, sum(DISTINCT points) AS s FROM receipts GROUP BY prefecture",
        ] {
            let plan = ctx.sql(sql).await.expect("plan").into_unoptimized_plan();
            let visible = plan.schema().as_arrow().clone();
            assert!(shadow(plan.clone(), &visible, 3, None).is_err(), "{sql}");
            let bounds = Bounds::default();
            assert!(shadow(plan, &visible, 3, Some(&bounds)).is_err(), "{sql}");
        }
    }

    /// Cells only stand in for plain, never-null magnitudes without a FILTER, and keep the
    /// exact shadow's shape.
    #[tokio::test]
    async fn cells_keep_the_exact_shadow_s_shape_and_only_where_they_are_exact() {
        for (sql, cells) in [
            (
                "SELECT prefecture, sum(points) AS s, avg(points) AS m FROM receipts GROUP BY prefecture",
                true,
            ),
            ("SELECT sum(points) AS s FROM receipts", true),
            (
                "SELECT prefecture, avg(days) AS d FROM receipts GROUP BY prefecture",
                false,
            ),
            (
                "SELECT prefecture, sum(points) FILTER (WHERE setting = 1) AS s FROM receipts GROUP BY prefecture",
                false,
            ),
            (
                "SELECT prefecture, sum(CASE WHEN setting = 1 THEN points ELSE 0 END) AS s FROM receipts GROUP BY prefecture",
                false,
            ),
        ] {
            let (bounded, exact) = shadows(sql, &Ceilings::new()).await;
            assert_eq!(uses_cells(&bounded), cells, "{sql}");
            assert!(!uses_cells(&exact), "{sql}");
        }
    }
}
