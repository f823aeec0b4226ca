//! HAVING lifted into a flag where it can be, and the shapes the shadow refuses: HAVINGs it
//! cannot lift, subqueries that choose rows.

use super::*;

/// Whether `predicate`, over `input`, reads an aggregate's value (not only group keys).
pub(crate) fn reads_an_aggregate(
    input: &LogicalPlan,
    predicate: &Expr,
) -> Result<bool, Unsupported> {
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
pub(crate) fn lift_having(
    plan: LogicalPlan,
    limited: bool,
) -> Result<(LogicalPlan, bool), Unsupported> {
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
pub(crate) fn refuse_unlifted_having(plan: &LogicalPlan) -> Result<(), Unsupported> {
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
pub(crate) fn refuse_if(
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
pub(crate) fn refuse_filtering_subqueries(plan: &LogicalPlan) -> Result<(), Unsupported> {
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
pub(crate) fn chooses_persons(node: &LogicalPlan, e: &Expr) -> Option<bool> {
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
pub(crate) fn yields_a_person(plan: &LogicalPlan) -> bool {
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
