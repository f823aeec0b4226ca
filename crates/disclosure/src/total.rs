//! Total expressions: a researcher's expression gives NULL where the engine would fail.
//!
//! A runtime error that happens only for some rows is an oracle: whether a query fails tells
//! one bit about the data, and one bit a query is enough to read a person's attributes. So
//! before a plan runs, every expression that could fail on a value is replaced by one that
//! gives NULL instead (docs/side-channels.md lists them):
//!
//! - `CAST` (written, or added by type coercion) becomes `TRY_CAST`;
//! - `a / b` and `a % b` divide by `NULLIF(b, 0)`;
//! - `-a` of an integer becomes `0 - a` (wrapping, as `+`, `-` and `*` already are);
//! - `~`, `~*`, `!~`, `!~*` become the total `regexp_like`;
//! - `lpad` and `rpad` beyond [`MAX_PADDED_LENGTH`] give NULL;
//! - every scalar function call but niji's own is wrapped in [`TotalUdf`]: a batch that fails
//!   is evaluated again row by row, and a row that fails gives NULL.
//!
//! What is left (DECIMAL arithmetic, SIMILAR TO, scalar subqueries of several rows) the guard
//! refuses before anything runs.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, new_null_array};
use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::udf_eq::UdfEq;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Documentation, Expr, ExprSchemable, LogicalPlan, Operator,
    ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::optimizer::analyzer::Analyzer;
use datafusion::prelude::SessionContext;

/// The analyzer rule that makes a plan's expressions total. It runs after type coercion, so
/// that the casts coercion adds are made total too.
#[derive(Debug, Default)]
pub struct TotalExpressions;

impl AnalyzerRule for TotalExpressions {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = merge_schema(&node.inputs());
            // An expression keeps its name (`a / b` stays the column "a / b"), as in coercion.
            let names = NamePreserver::new(&node);
            // Every node's schema is computed anew, as coercion does: a node above a rewritten
            // one (an alias, a join, a union) takes its now nullable columns.
            node.map_expressions(|e| {
                let name = names.save(&e);
                e.transform_up(|e| total_expr(e, &schema))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })?
            .map_data(LogicalPlan::recompute_schema)
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "niji_total_expressions"
    }
}

/// Makes every plan run in `ctx` total: [`TotalExpressions`] after DataFusion's own analyzer
/// rules.
pub fn install(ctx: &SessionContext) {
    ctx.add_analyzer_rule(Arc::new(TotalExpressions));
}

/// niji's own functions keep failing where they fail (the strict pseudonym lookup fails on a
/// person its dictionary lacks, rather than give a wrong answer); the guard lets no researcher
/// call them.
const OWN_FUNCTIONS: &str = "niji_";

/// DataFusion's analyzer rules, then [`TotalExpressions`], as [`install`] sets them: for a
/// researcher's expressions that niji evaluates outside a session (a stratum's keys).
pub fn analyzer() -> Analyzer {
    let mut rules = Analyzer::new().rules;
    rules.push(Arc::new(TotalExpressions));
    Analyzer::with_rules(rules)
}

fn total_expr(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    Ok(match e {
        Expr::Cast(c) => Transformed::yes(Expr::TryCast(TryCast::new_from_field(c.expr, c.field))),
        // Every call, however it was planned (`SUBSTRING(s FROM 1)` is planned without the
        // function registry).
        Expr::ScalarFunction(f)
            if !is_total(&f.func) && !f.func.name().starts_with(OWN_FUNCTIONS) =>
        {
            let args = capped_padding(f.func.name(), f.args, schema);
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(total_udf(&f.func)),
                args,
            )))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::Divide | Operator::Modulo) =>
        {
            total_division(left, op, right, schema)?
        }
        // A pattern compiles when rows arrive: `~` and its kin become the total regexp_like.
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if regex_operator(op).is_some() => {
            let (case_insensitive, negated) = regex_operator(op).unwrap_or_default();
            let mut args = vec![*left, *right];
            if case_insensitive {
                args.push(Expr::Literal(ScalarValue::Utf8(Some("i".into())), None));
            }
            let call = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(total_udf(&datafusion::functions::regex::regexp_like())),
                args,
            ));
            Transformed::yes(if negated {
                Expr::Not(Box::new(call))
            } else {
                call
            })
        }
        Expr::Negative(inner) => match inner.get_type(schema) {
            Ok(ty) if ty.is_integer() => match ScalarValue::new_zero(&ty) {
                Ok(zero) => Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(Expr::Literal(zero, None)),
                    Operator::Minus,
                    inner,
                ))),
                Err(_) => Transformed::no(Expr::Negative(inner)),
            },
            _ => Transformed::no(Expr::Negative(inner)),
        },
        other => Transformed::no(other),
    })
}

/// The longest `lpad` / `rpad` result: a longer one gives NULL. Padding to a length read from
/// the data would otherwise allocate gigabytes for some rows only, and whether the server
/// survives that would tell about them.
pub const MAX_PADDED_LENGTH: i64 = 10_000;

/// `lpad(s, n, …)` and `rpad(s, n, …)` with `n` beyond [`MAX_PADDED_LENGTH`] made NULL.
fn capped_padding(name: &str, mut args: Vec<Expr>, schema: &DFSchema) -> Vec<Expr> {
    if !matches!(name, "lpad" | "rpad") || args.len() < 2 {
        return args;
    }
    let length = args[1].clone();
    let Ok(ty) = length.get_type(schema) else {
        return args;
    };
    let (Ok(cap), Ok(null)) = (
        ScalarValue::Int64(Some(MAX_PADDED_LENGTH)).cast_to(&ty),
        ScalarValue::try_from(&ty),
    ) else {
        return args;
    };
    if let Ok(capped) = datafusion::logical_expr::when(
        length.clone().gt(Expr::Literal(cap, None)),
        Expr::Literal(null, None),
    )
    .otherwise(length)
    {
        args[1] = capped;
    }
    args
}

/// For a regular-expression operator: whether it ignores case, and whether it is negated.
fn regex_operator(op: Operator) -> Option<(bool, bool)> {
    match op {
        Operator::RegexMatch => Some((false, false)),
        Operator::RegexIMatch => Some((true, false)),
        Operator::RegexNotMatch => Some((false, true)),
        Operator::RegexNotIMatch => Some((true, true)),
        _ => None,
    }
}

/// `a / b` or `a % b` with NULL for a divisor of 0, and the smallest signed integer over -1
/// wrapping (`0 - a`) instead of overflowing. A divisor that is a nonzero literal, or not a
/// number, is left as it is.
fn total_division(
    left: Box<Expr>,
    op: Operator,
    right: Box<Expr>,
    schema: &DFSchema,
) -> Result<Transformed<Expr>> {
    let nonzero_literal = matches!(right.as_ref(), Expr::Literal(v, _)
        if !v.is_null() && ScalarValue::new_zero(&v.data_type()).is_ok_and(|z| &z != v));
    let ty = match right.get_type(schema) {
        Ok(ty) if ty.is_numeric() && !nonzero_literal => ty,
        _ => {
            return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr::new(
                left, op, right,
            ))));
        }
    };
    // Literals of the divisor's own type: no coercion runs after this rule.
    let zero = Expr::Literal(ScalarValue::new_zero(&ty)?, None);
    let divided = Expr::BinaryExpr(BinaryExpr::new(
        left.clone(),
        op,
        Box::new(nullif((*right).clone(), zero.clone())),
    ));
    if op != Operator::Divide || !ty.is_signed_integer() {
        return Ok(Transformed::yes(divided));
    }
    let minus_one = Expr::Literal(ScalarValue::new_negative_one(&ty)?, None);
    let negated = Expr::BinaryExpr(BinaryExpr::new(Box::new(zero), Operator::Minus, left));
    Ok(Transformed::yes(
        datafusion::logical_expr::when((*right).eq(minus_one), negated).otherwise(divided)?,
    ))
}

fn nullif(value: Expr, zero: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        datafusion::functions::core::nullif(),
        vec![value, zero],
    ))
}

/// `udf`, total: where it fails on a batch, each row is evaluated alone and a row that fails
/// gives NULL. Name, aliases, signature and every planning property are the inner function's,
/// so the guard, lineage and the optimizer see the same function.
pub fn total_udf(udf: &ScalarUDF) -> ScalarUDF {
    if is_total(udf) {
        return udf.clone();
    }
    ScalarUDF::new_from_impl(TotalUdf {
        inner: Arc::clone(udf.inner()).into(),
    })
}

fn has_regex_operator(e: &Expr) -> bool {
    e.exists(|e| Ok(matches!(e, Expr::BinaryExpr(b) if regex_operator(b.op).is_some())))
        .unwrap_or(true)
}

fn is_total(udf: &ScalarUDF) -> bool {
    let inner: &dyn Any = udf.inner().as_ref();
    inner.is::<TotalUdf>()
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TotalUdf {
    inner: UdfEq<Arc<dyn ScalarUDFImpl>>,
}

impl TotalUdf {
    /// The function made total.
    pub(crate) fn inner(&self) -> &Arc<dyn ScalarUDFImpl> {
        &self.inner
    }

    fn row_by_row(&self, args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ty = args.return_field.data_type();
        let arrays = args
            .args
            .iter()
            .any(|a| matches!(a, ColumnarValue::Array(_)));
        if !arrays {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from(ty)?));
        }
        let mut rows: Vec<ArrayRef> = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let one = ScalarFunctionArgs {
                args: args
                    .args
                    .iter()
                    .map(|a| match a {
                        ColumnarValue::Array(array) => ColumnarValue::Array(array.slice(row, 1)),
                        ColumnarValue::Scalar(s) => ColumnarValue::Scalar(s.clone()),
                    })
                    .collect(),
                arg_fields: args.arg_fields.clone(),
                number_rows: 1,
                return_field: Arc::clone(&args.return_field),
                config_options: Arc::clone(&args.config_options),
            };
            let value = self
                .inner
                .invoke_with_args(one)
                .and_then(|v| v.into_array(1))
                .ok()
                .filter(|a| a.data_type() == ty && a.len() == 1)
                .unwrap_or_else(|| new_null_array(ty, 1));
            rows.push(value);
        }
        let refs: Vec<&dyn Array> = rows.iter().map(AsRef::as_ref).collect();
        Ok(ColumnarValue::Array(arrow::compute::concat(&refs)?))
    }
}

impl ScalarUDFImpl for TotalUdf {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // NULL where the inner function would fail.
        self.inner
            .return_field_from_args(args)
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match self.inner.invoke_with_args(args.clone()) {
            Ok(value) => Ok(value),
            Err(_) => self.row_by_row(&args),
        }
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        // A simplification that fails (a constant argument the function rejects) leaves the
        // call as it is, to give NULL when it runs. What a simplification gives is made total
        // too (coalesce becomes a CASE, which some functions need), except a regular-expression
        // operator (regexp_like becomes `~`): the total call stays.
        match self.inner.simplify(args.clone(), info) {
            Ok(ExprSimplifyResult::Simplified(e)) if !has_regex_operator(&e) => {
                let schema = DFSchema::empty();
                Ok(ExprSimplifyResult::Simplified(
                    e.transform_up(|e| total_expr(e, &schema))?.data,
                ))
            }
            _ => Ok(ExprSimplifyResult::Original(args)),
        }
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::datasource::MemTable;

    /// A context whose table `t` has a row that makes each probe fail (`i` = 0, `s` = 'x')
    /// and one that does not; `total`: made total as niji makes project contexts.
    async fn context(total: bool) -> SessionContext {
        let ctx = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![0, 4])),
                Arc::new(StringArray::from(vec!["x", "12"])),
            ],
        )
        .expect("batch");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        ctx.register_table("t", Arc::new(table)).expect("register");
        if total {
            install(&ctx);
        }
        ctx
    }

    async fn values(ctx: &SessionContext, expr: &str) -> Result<Vec<String>> {
        let batches = ctx
            .sql(&format!("SELECT {expr} AS v FROM t ORDER BY i"))
            .await?
            .collect()
            .await?;
        let options = FormatOptions::default().with_null("NULL");
        let mut out = Vec::new();
        for b in &batches {
            let f = ArrayFormatter::try_new(b.column(0).as_ref(), &options)?;
            out.extend((0..b.num_rows()).map(|i| f.value(i).to_string()));
        }
        Ok(out)
    }

    /// Every fallible family: (expression, its first row and its second when made total,
    /// whether plain DataFusion fails on it). The first row is the one that fails; "-" skips a
    /// row whose value does not matter here.
    #[tokio::test]
    async fn each_fallible_expression_gives_null_where_it_would_fail() {
        let plain = context(false).await;
        let total = context(true).await;
        for (expr, first, second, fails) in [
            ("CAST(s AS INT)", "NULL", "12", true),
            ("s > 0", "NULL", "true", true),
            ("CAST(s AS DATE)", "NULL", "-", true),
            ("CAST((4 - i) * 1e300 AS INT)", "NULL", "0", true),
            ("100 / i", "NULL", "25", true),
            ("100 % i", "NULL", "0", true),
            (
                "CAST(-128 AS TINYINT) / CAST(i - 1 AS TINYINT)",
                "-128",
                "-42",
                true,
            ),
            ("100.0 / i", "NULL", "25.0", false),
            ("abs(CAST(i - 128 AS TINYINT))", "NULL", "124", true),
            ("-CAST(i - 128 AS TINYINT)", "-128", "124", false),
            ("sqrt(i - 1)", "NULL", "1.7320508075688772", true),
            ("substr(s, 1, i - 1)", "NULL", "12", true),
            ("split_part(s, '-', i)", "NULL", "-", true),
            (
                "regexp_like(s, CASE WHEN i = 0 THEN '(' ELSE '1' END)",
                "NULL",
                "true",
                true,
            ),
            (
                "regexp_replace(s, CASE WHEN i = 0 THEN '(' ELSE '1' END, 'x')",
                "NULL",
                "x2",
                true,
            ),
            (
                "s ~ CASE WHEN i = 0 THEN '(' ELSE '1' END",
                "NULL",
                "true",
                true,
            ),
            (
                "s !~* CASE WHEN i = 0 THEN '(' ELSE '1' END",
                "NULL",
                "false",
                true,
            ),
            ("make_date(2022, i, 1)", "NULL", "2022-04-01", true),
            ("to_date(s)", "NULL", "-", true),
            ("to_char(make_date(2022, 1, 1), '%Q')", "NULL", "-", true),
            (
                "date_trunc(CASE WHEN i = 0 THEN 'x' ELSE 'year' END, make_date(2022, 5, 1))",
                "NULL",
                "-",
                true,
            ),
            (
                "date_bin(INTERVAL '0 days', make_date(2022, 5, 1))",
                "NULL",
                "-",
                true,
            ),
            (
                "lpad(s, CASE WHEN i = 0 THEN 3000000000 ELSE 3 END)",
                "NULL",
                " 12",
                true,
            ),
            (
                "rpad(s, CASE WHEN i = 0 THEN 20000 ELSE 3 END, '*')",
                "NULL",
                "12*",
                false,
            ),
        ] {
            let failed = values(&plain, expr).await;
            assert_eq!(
                failed.is_err(),
                fails,
                "{expr} in plain DataFusion: {failed:?}"
            );
            let got = values(&total, expr)
                .await
                .unwrap_or_else(|e| panic!("{expr} failed when total: {e}"));
            assert_eq!(got[0], first, "{expr}");
            if second != "-" {
                assert_eq!(got[1], second, "{expr}");
            }
        }
    }

    #[test]
    fn a_total_function_keeps_its_name_and_is_wrapped_once() {
        let substr = datafusion::functions::unicode::substr();
        let total = total_udf(&substr);
        assert_eq!(total.name(), "substr");
        assert_eq!(total.aliases(), substr.aliases());
        assert!(is_total(&total) && !is_total(&substr));
        assert_eq!(total_udf(&total), total);
    }

    /// A plan that DataFusion plans without the registry (`SUBSTRING … FROM … FOR`) is made
    /// total all the same, and niji's own functions are left as they are.
    #[tokio::test]
    async fn every_call_is_wrapped_but_nijis_own() {
        let total = context(true).await;
        let got = values(&total, "SUBSTRING(s FROM 1 FOR i - 1)")
            .await
            .expect("total");
        assert_eq!(got, ["NULL", "12"]);
        let plain = ScalarFunction::new_udf(datafusion::functions::unicode::substr(), vec![]);
        let named = |name: &str| {
            let mut f = plain.clone();
            f.func = Arc::new(ScalarUDF::new_from_impl(Named(name.to_string())));
            Expr::ScalarFunction(f)
        };
        let schema = DFSchema::empty();
        assert!(total_expr(named("niji_pseudonym"), &schema).is_ok_and(|t| !t.transformed));
        assert!(total_expr(named("lower"), &schema).is_ok_and(|t| t.transformed));
    }

    /// A function known only by its name.
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct Named(String);

    impl ScalarUDFImpl for Named {
        fn name(&self) -> &str {
            &self.0
        }
        fn signature(&self) -> &Signature {
            static SIGNATURE: std::sync::LazyLock<Signature> = std::sync::LazyLock::new(|| {
                Signature::any(0, datafusion::logical_expr::Volatility::Immutable)
            });
            &SIGNATURE
        }
        fn return_type(&self, _: &[DataType]) -> Result<DataType> {
            Ok(DataType::Null)
        }
        fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
            Ok(ColumnarValue::Scalar(ScalarValue::Null))
        }
    }
}
