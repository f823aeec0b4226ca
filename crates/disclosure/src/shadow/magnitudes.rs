//! What a magnitude's rows add to a cell: which values add nothing, which rows are read.

use super::*;

/// Whether a CASE branch giving `e` adds nothing of the row to the aggregate: a NULL, or, where
/// `zero_adds_nothing` (sums, means, extremes; not counts), a 0.
pub(crate) fn adds_nothing(e: &Expr, zero_adds_nothing: bool) -> bool {
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
pub(crate) fn rows_read(v: &Expr, zero_adds_nothing: bool) -> Expr {
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
