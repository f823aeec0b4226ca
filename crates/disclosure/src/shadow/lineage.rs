//! Column lineage: where each output column comes from (source columns, functions, aggregates),
//! and the plan walks that find a view's pseudonym, a widened column or a hidden column.

use super::*;

pub(crate) fn table_name(t: &datafusion::common::TableReference) -> String {
    match t.schema() {
        Some(schema) => format!("{schema}.{}", t.table()),
        None => t.table().to_string(),
    }
}

pub(crate) fn trace_expr(
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
pub(crate) fn refuse_grouping_sets(a: &Aggregate) -> Result<(), Unsupported> {
    if a.group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Err(unsupported("GROUPING SETS, ROLLUP and CUBE"));
    }
    Ok(())
}

pub(crate) fn aggregate_of(expr: &Expr) -> Option<&AggregateFunction> {
    match expr {
        Expr::AggregateFunction(f) => Some(f),
        Expr::Alias(a) => aggregate_of(&a.expr),
        _ => None,
    }
}

/// Follows output column `index` of `plan` down to the view columns it comes from; `below`:
/// an aggregation was already passed on the way down.
pub(crate) fn trace_column(
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
pub(crate) fn unsupported_node(plan: &LogicalPlan) -> Unsupported {
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
pub(crate) fn passed_through(plan: &LogicalPlan, index: usize) -> Option<(&LogicalPlan, usize)> {
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
pub(crate) fn is_pseudonym_of(input: &LogicalPlan, expr: &Expr) -> bool {
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
pub(crate) fn origin(plan: &LogicalPlan, index: usize) -> Option<(&LogicalPlan, usize)> {
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

pub(crate) fn unaliased(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unaliased(&a.expr),
        other => other,
    }
}

pub(crate) fn is_view_pseudonym(plan: &LogicalPlan, index: usize) -> bool {
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

pub(crate) fn uncast(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => uncast(&a.expr),
        Expr::Cast(c) => uncast(&c.expr),
        Expr::TryCast(c) => uncast(&c.expr),
        other => other,
    }
}

/// A column as it is (perhaps cast): its nulls are the only rows it leaves out.
pub(crate) fn is_plain(e: &Expr) -> bool {
    matches!(uncast(e), Expr::Column(_))
}

/// The column `e` is, cast at most to types that hold each of its values (wider integers,
/// floats): a cast that rounds (a float to an integer) could take a person's contribution past
/// their stored total.
pub(crate) fn widened_column<'e>(e: &'e Expr, schema: &DFSchema) -> Option<&'e Column> {
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
pub(crate) fn widens(from: &DataType, to: &DataType) -> bool {
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
pub(crate) fn view_column(plan: &LogicalPlan, index: usize) -> Option<(&TableScan, &str)> {
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
pub(crate) fn hidden_column_of<'p>(
    plan: &'p LogicalPlan,
    c: &Column,
    name: &str,
) -> Option<&'p TableScan> {
    let (view, column) = view_column(plan, plan.schema().index_of_column(c).ok()?)?;
    (column == name).then_some(view)
}
