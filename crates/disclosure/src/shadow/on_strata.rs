//! Filters and keys computed on a view's strata instead of its rows.

use super::*;

/// The filters on the rows reaching `plan` from its one view, written over the view's stored
/// columns, and the view's scan, where for each stratum (of the view's `stratified` columns)
/// all of its rows or none pass: nodes that pass rows on unchanged, and filters on stratified
/// columns only. None otherwise.
pub(crate) fn strata_filters<'p>(
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
pub(crate) fn unqualified(e: &Expr) -> Option<Expr> {
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
pub(crate) fn deterministic(e: &Expr) -> bool {
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
pub(crate) fn on_strata(plan: &LogicalPlan, e: &Expr, stratified: &BTreeSet<&str>) -> Option<Expr> {
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

pub(crate) fn column_on_strata(
    plan: &LogicalPlan,
    index: usize,
    stratified: &BTreeSet<&str>,
) -> Option<Expr> {
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

pub(crate) fn or_else(a: Option<Expr>, b: Expr) -> Expr {
    match a {
        Some(a) => a.or(b),
        None => b,
    }
}
