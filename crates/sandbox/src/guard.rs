//! The query guard: exactly one statement, `verify_plan` with DDL, DML and statements off,
//! then niji's own checks on the researcher's plan (plan nodes, tables, functions). Views are
//! opaque, so what is checked is what the researcher wrote, not niji's view internals.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{Expr, LogicalPlan, WindowFunctionDefinition};
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{ObjectName, ObjectNamePart, ObjectType, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::SandboxError;
use crate::views::{ProjectEnv, WORKSPACE};

/// The function allowlist (`policies/sql.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlPolicy {
    pub scalar: HashSet<String>,
    pub aggregate: HashSet<String>,
    pub window: HashSet<String>,
    pub information_schema: HashSet<String>,
}

impl SqlPolicy {
    pub fn load(path: &Path) -> Result<Self, SandboxError> {
        crate::load_toml(path)
    }
}

/// What a checked statement asks niji to do.
#[derive(Debug)]
pub enum Intent {
    Query(LogicalPlan),
    /// `CREATE [OR REPLACE] TABLE work.<name> AS <query>`.
    CreateWork {
        name: String,
        replace: bool,
        plan: LogicalPlan,
    },
    /// `DROP TABLE [IF EXISTS] work.<name>`.
    DropWork {
        name: String,
        if_exists: bool,
    },
}

#[derive(Debug)]
pub struct Checked {
    pub intent: Intent,
    /// Tables the plan reads, as `schema.table`.
    pub tables: Vec<String>,
    /// SHA-256 of the plan as displayed (empty for a drop).
    pub plan_digest: String,
}

fn refused(msg: impl Into<String>) -> SandboxError {
    SandboxError::Refused(msg.into())
}

/// `work.<name>` → `name`, where name is a plain lower-case identifier.
fn work_table_name(name: &ObjectName) -> Result<String, SandboxError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(i.value.to_lowercase()),
            ObjectNamePart::Function(_) => Err(refused("table names cannot be computed")),
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [schema, table] if schema == WORKSPACE => {
            let ok = !table.is_empty()
                && table.len() <= 64
                && table
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !table.as_bytes()[0].is_ascii_digit();
            if ok {
                Ok(table.clone())
            } else {
                Err(refused(format!(
                    "workspace table name {table:?} must be lower-case letters, digits and '_'"
                )))
            }
        }
        _ => Err(refused(format!(
            "tables can only be created in or dropped from the project workspace ({WORKSPACE}.<name>), not {name}"
        ))),
    }
}

/// Parses `sql`, which must be exactly one statement, and checks it for `env`.
pub async fn check(
    env: &ProjectEnv,
    policy: &SqlPolicy,
    sql: &str,
) -> Result<Checked, SandboxError> {
    let state = env.ctx.state();
    let recursion = state.config().options().sql_parser.recursion_limit.get();
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&GenericDialect {})
        .with_recursion_limit(recursion)
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| refused(format!("malformed SQL: {}", first_line(&e.to_string()))))?;
    if statements.len() != 1 {
        return Err(refused(format!(
            "exactly one SQL statement per request ({} given)",
            statements.len()
        )));
    }
    let Some(statement) = statements.pop_front() else {
        return Err(refused("no SQL statement given"));
    };
    // niji carries out workspace writes itself; their query part is checked like any query.
    if let DfStatement::Statement(s) = &statement {
        match s.as_ref() {
            Statement::CreateTable(ct) => {
                let name = work_table_name(&ct.name)?;
                let plain = ct.columns.is_empty()
                    && !ct.external
                    && !ct.temporary
                    && ct.like.is_none()
                    && ct.clone.is_none()
                    && ct.location.is_none();
                let Some(query) = ct.query.clone().filter(|_| plain) else {
                    return Err(refused(
                        "a workspace table is created only as CREATE TABLE work.<name> AS SELECT …",
                    ));
                };
                let plan = plan_query(
                    env,
                    DfStatement::Statement(Box::new(Statement::Query(query))),
                )
                .await?;
                let (tables, plan_digest) = inspect(env, policy, &plan)?;
                return Ok(Checked {
                    intent: Intent::CreateWork {
                        name,
                        replace: ct.or_replace,
                        plan,
                    },
                    tables,
                    plan_digest,
                });
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                if_exists,
                names,
                ..
            } if names.len() == 1 => {
                let name = work_table_name(&names[0])?;
                return Ok(Checked {
                    tables: vec![format!("{WORKSPACE}.{name}")],
                    intent: Intent::DropWork {
                        name,
                        if_exists: *if_exists,
                    },
                    plan_digest: String::new(),
                });
            }
            _ => {}
        }
    }
    let plan = plan_query(env, statement).await?;
    let (tables, plan_digest) = inspect(env, policy, &plan)?;
    Ok(Checked {
        intent: Intent::Query(plan),
        tables,
        plan_digest,
    })
}

/// The first line of an engine message, at most 300 characters.
pub(crate) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

/// The plan of `sql` (already checked) over the project's shadow views, for disclosure
/// control's rewrite; workspace writes have none.
pub async fn plan_shadow(env: &ProjectEnv, sql: &str) -> Result<LogicalPlan, SandboxError> {
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&GenericDialect {})
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| refused(first_line(&e.to_string())))?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(statement), true) => plan_in(&env.shadow_ctx, statement).await,
        _ => Err(refused("exactly one SQL statement per request")),
    }
}

async fn plan_query(env: &ProjectEnv, statement: DfStatement) -> Result<LogicalPlan, SandboxError> {
    plan_in(&env.ctx, statement).await
}

async fn plan_in(
    ctx: &datafusion::prelude::SessionContext,
    statement: DfStatement,
) -> Result<LogicalPlan, SandboxError> {
    let state = ctx.state();
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(|e| refused(first_line(&e.strip_backtrace())))?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| refused(first_line(&e.strip_backtrace())))?;
    Ok(plan)
}

/// niji's own checks after `verify_plan`; returns the tables read and the plan digest.
fn inspect(
    env: &ProjectEnv,
    policy: &SqlPolicy,
    plan: &LogicalPlan,
) -> Result<(Vec<String>, String), SandboxError> {
    let mut tables = BTreeSet::new();
    let mut problem: Option<SandboxError> = None;
    let mut fail = |e: SandboxError| {
        problem.get_or_insert(e);
        Ok(TreeNodeRecursion::Stop)
    };
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::EmptyRelation(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::Distinct(_) => {}
            LogicalPlan::TableScan(scan) => {
                let resolved = scan
                    .table_name
                    .clone()
                    .resolve(crate::views::CATALOG, WORKSPACE);
                let (schema, table) = (resolved.schema.to_string(), resolved.table.to_string());
                let ours = source_as_provider(&scan.source)
                    .map(|p| ProjectEnv::is_project_table(p.as_ref()))
                    .unwrap_or(false);
                let allowed = if schema == "information_schema" {
                    policy.information_schema.contains(&table)
                } else {
                    ours && resolved.catalog.as_ref() == crate::views::CATALOG
                        && (schema == WORKSPACE || env.views.contains(&format!("{schema}.{table}")))
                };
                if !allowed {
                    return fail(refused(format!(
                        "table {schema}.{table} is not part of this project"
                    )));
                }
                tables.insert(format!("{schema}.{table}"));
            }
            other => {
                return fail(refused(format!(
                    "{} is not allowed: only queries over the project's tables",
                    node_name(other)
                )));
            }
        }
        let mut bad: Option<String> = None;
        node.apply_expressions(|e| {
            e.apply(|e| {
                let verdict = match e {
                    Expr::ScalarFunction(f) => allowed_fn(&policy.scalar, f.name()),
                    Expr::AggregateFunction(f) => allowed_fn(&policy.aggregate, f.func.name()),
                    Expr::WindowFunction(w) => match &w.fun {
                        WindowFunctionDefinition::AggregateUDF(f) => {
                            allowed_fn(&policy.aggregate, f.name())
                        }
                        WindowFunctionDefinition::WindowUDF(f) => {
                            allowed_fn(&policy.window, f.name())
                        }
                    },
                    Expr::ScalarVariable(..) => Err("session variables".to_string()),
                    // What the total rewrite (niji_disclosure::total) cannot make total.
                    Expr::SimilarTo(_) => Err("SIMILAR TO (use regexp_like)".to_string()),
                    // A pattern computed from the data compiles per row, and can fail.
                    Expr::Like(l) if !matches!(l.pattern.as_ref(), Expr::Literal(..)) => {
                        Err("LIKE with a computed pattern (write the pattern out)".to_string())
                    }
                    Expr::Cast(c) if is_decimal(c.field.data_type()) => Err(DECIMAL.to_string()),
                    Expr::TryCast(c) if is_decimal(c.field.data_type()) => {
                        Err(DECIMAL.to_string())
                    }
                    Expr::Literal(v, _) if is_decimal(&v.data_type()) => Err(DECIMAL.to_string()),
                    Expr::ScalarSubquery(s) if !gives_one_row(&s.subquery) => Err(
                        "a scalar subquery that may give several rows (make it an aggregate without GROUP BY, or add LIMIT 1)"
                            .to_string(),
                    ),
                    Expr::Placeholder(_) => Err("parameters".to_string()),
                    Expr::Unnest(_) => Err("UNNEST".to_string()),
                    _ => Ok(()),
                };
                match verdict {
                    Ok(()) => Ok(TreeNodeRecursion::Continue),
                    Err(what) => {
                        bad = Some(what);
                        Ok(TreeNodeRecursion::Stop)
                    }
                }
            })
        })?;
        match bad {
            Some(what) => fail(refused(format!("{what} not allowed"))),
            None => Ok(TreeNodeRecursion::Continue),
        }
    })
    .map_err(|e| refused(first_line(&e.strip_backtrace())))?;
    if let Some(e) = problem {
        return Err(e);
    }
    let digest = Sha256::digest(plan.display_indent().to_string().as_bytes());
    Ok((
        tables.into_iter().collect(),
        niji_pseudo::hex32(&digest.into()),
    ))
}

/// DECIMAL arithmetic fails on overflow, and whether it does depends on the values.
const DECIMAL: &str = "DECIMAL values (their arithmetic fails on overflow: use DOUBLE)";

fn is_decimal(ty: &datafusion::arrow::datatypes::DataType) -> bool {
    use datafusion::arrow::datatypes::DataType::{Decimal32, Decimal64, Decimal128, Decimal256};
    matches!(
        ty,
        Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..)
    )
}

/// Whether a scalar subquery gives at most one row by its form, whatever the data: one with
/// several fails at run time, and whether it does would tell about the data.
fn gives_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => gives_one_row(&p.input),
        LogicalPlan::SubqueryAlias(a) => gives_one_row(&a.input),
        LogicalPlan::Sort(s) => gives_one_row(&s.input),
        LogicalPlan::Filter(f) => gives_one_row(&f.input),
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        LogicalPlan::Limit(l) => {
            matches!(l.get_fetch_type(), Ok(datafusion::logical_expr::FetchType::Literal(Some(n))) if n <= 1)
                || gives_one_row(&l.input)
        }
        LogicalPlan::EmptyRelation(_) => true,
        LogicalPlan::Values(v) => v.values.len() <= 1,
        _ => false,
    }
}

fn allowed_fn(list: &HashSet<String>, name: &str) -> Result<(), String> {
    if list.contains(name) {
        Ok(())
    } else {
        Err(format!("function {name}"))
    }
}

fn node_name(plan: &LogicalPlan) -> &'static str {
    match plan {
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => "EXPLAIN",
        LogicalPlan::DescribeTable(_) => "DESCRIBE",
        LogicalPlan::RecursiveQuery(_) => "a recursive query",
        LogicalPlan::Unnest(_) => "UNNEST",
        LogicalPlan::Repartition(_) => "repartitioning",
        LogicalPlan::Extension(_) => "an extension node",
        LogicalPlan::Ddl(_) => "DDL",
        LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => "DML",
        LogicalPlan::Statement(_) => "a statement",
        _ => "this plan node",
    }
}
