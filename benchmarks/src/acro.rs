//! `niji-bench acro`: the same tables checked by niji and by ACRO (the SACRO project's
//! automatic output checker) on the same stored receipts, side by side. ACRO counts records
//! and applies its threshold, n-k dominance and p-ratio rules to them; niji counts persons and
//! applies its rules to per-person contributions. Where ACRO flags a cell niji must flag it
//! too; every cell niji flags beyond ACRO is listed with niji's reason.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use niji_sandbox::{Mode, QueryRequest, Scope, Status};

use crate::EnvArgs;
use crate::visiting::{open, prepare, spec};

/// A two-way table over the receipts: its filter (SQL and pandas), keys and aggregate.
struct Table {
    name: &'static str,
    sql_filter: &'static str,
    pandas_filter: &'static str,
    index: &'static str,
    columns: &'static str,
    /// (SQL aggregate, ACRO aggfunc, values column); none: a count of receipts.
    aggregate: Option<(&'static str, &'static str, &'static str)>,
}

const TABLES: &[Table] = &[
    Table {
        name: "inpatient receipts 2022-10, prefecture × sex",
        sql_filter: "setting = 1 AND claim_ym = 202210",
        pandas_filter: "setting == 1 and claim_ym == 202210",
        index: "prefecture",
        columns: "sex",
        aggregate: None,
    },
    Table {
        name: "mean points of the same",
        sql_filter: "setting = 1 AND claim_ym = 202210",
        pandas_filter: "setting == 1 and claim_ym == 202210",
        index: "prefecture",
        columns: "sex",
        aggregate: Some(("avg(points)", "mean", "points")),
    },
    Table {
        name: "sum of points, prefecture × copay rate",
        sql_filter: "setting = 1 AND claim_ym = 202210",
        pandas_filter: "setting == 1 and claim_ym == 202210",
        index: "prefecture",
        columns: "copay_rate",
        aggregate: Some(("sum(points)", "sum", "points")),
    },
    Table {
        name: "outpatient days, prefecture × copay rate",
        sql_filter: "setting = 2 AND claim_ym = 202210",
        pandas_filter: "setting == 2 and claim_ym == 202210",
        index: "prefecture",
        columns: "copay_rate",
        aggregate: Some(("sum(days)", "sum", "days")),
    },
];

/// A cell's verdicts: ACRO's failed checks (None: passed) and niji's reason (None: released).
#[derive(Debug, Default)]
struct Cell {
    acro: Option<String>,
    niji: Option<String>,
}

pub fn run(
    ctx: &crate::Context,
    env: &EnvArgs,
    persons: u64,
    work: &Path,
    python: &Path,
    script: &Path,
) -> anyhow::Result<()> {
    let (data, key_file) = prepare(ctx, persons, work)?;
    let specs: Vec<serde_json::Value> = TABLES
        .iter()
        .map(|t| {
            let (values, aggfunc) = t.aggregate.map_or((None, None), |(_, f, v)| (Some(v), Some(f)));
            serde_json::json!({"name": t.name, "filter": t.pandas_filter, "index": t.index, "columns": t.columns, "values": values, "aggfunc": aggfunc})
        })
        .collect();
    let tables_file = work.join("acro_tables.json");
    std::fs::write(&tables_file, serde_json::to_vec(&specs)?)?;
    let acro = std::process::Command::new(python)
        .arg(script)
        .arg(data.join("store"))
        .arg(&tables_file)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    anyhow::ensure!(
        acro.status.success(),
        "acro: {}",
        String::from_utf8_lossy(&acro.stderr)
    );
    let acro: BTreeMap<String, Vec<(String, String, String)>> =
        serde_json::from_slice(&acro.stdout)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let visiting = open(ctx, env, &data, key_file, "datafusion").await?;
        println!("niji-bench acro: {persons} persons; ACRO counts receipts, niji persons");
        println!(
            "{:<46} {:>6} {:>6} {:>6} {:>6} {:>10} {:>10}",
            "table", "cells", "acro", "niji", "both", "acro only", "niji only"
        );
        let mut acro_only_total = 0;
        let mut niji_adds: BTreeMap<String, usize> = BTreeMap::new();
        for (i, t) in TABLES.iter().enumerate() {
            // A project of its own per table: differencing between tables is niji's alone.
            let project = format!("acro-{i}");
            if visiting.platform().db().project(&project).await?.is_none() {
                let spec = spec(&project, "2021-10", "2023-09");
                visiting
                    .platform()
                    .create_project("bench", &spec, visiting.catalog())
                    .await?;
            }
            let aggregate = t.aggregate.map_or("count(*)", |(sql, _, _)| sql);
            let sql = format!(
                "SELECT {}, {}, {aggregate} AS value FROM ndb.receipts WHERE {} GROUP BY 1, 2",
                t.index, t.columns, t.sql_filter
            );
            let o = visiting
                .query(&QueryRequest {
                    user: "bench".into(),
                    scope: Scope::project(project.clone()),
                    mode: Mode::Real,
                    sql: sql.clone(),
                    via: "bench",
                })
                .await;
            anyhow::ensure!(
                matches!(o.status, Status::Released | Status::Suppressed),
                "{sql}: {:?} {}",
                o.status,
                o.message
            );
            let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
            for (index, column, outcome) in &acro[t.name] {
                cells
                    .entry((index.clone(), column.clone()))
                    .or_default()
                    .acro = (outcome != "ok").then(|| outcome.clone());
            }
            // Cells of no receipts are no rows in niji's result: nothing is shown of them.
            for cell in cells.values_mut() {
                cell.niji = Some("empty group: no row, nothing shown".into());
            }
            let options = FormatOptions::default().with_null("NULL");
            let mut row = 0;
            for b in &o.batches {
                let keys = [0, 1].map(|c| ArrayFormatter::try_new(b.column(c).as_ref(), &options));
                let [Ok(a), Ok(c)] = keys else {
                    anyhow::bail!("unformattable keys")
                };
                for r in 0..b.num_rows() {
                    let reason = o
                        .suppressed
                        .iter()
                        .find(|s| s.row == row && s.column == "value")
                        .map(|s| s.reason.clone());
                    let key = (a.value(r).to_string(), c.value(r).to_string());
                    // Every group niji shows is one of ACRO's cells; a key written otherwise
                    // would leave both sides uncompared.
                    let Some(cell) = cells.get_mut(&key) else {
                        anyhow::bail!(
                            "{}: niji's group {key:?} is no cell of ACRO's table",
                            t.name
                        );
                    };
                    cell.niji = reason;
                    row += 1;
                }
            }
            let (mut a, mut n, mut both, mut acro_only, mut niji_only) = (0, 0, 0, 0, 0);
            for ((index, column), cell) in &cells {
                match (&cell.acro, &cell.niji) {
                    (Some(_), Some(_)) => both += 1,
                    (Some(why), None) => {
                        acro_only += 1;
                        println!("  ACRO flags {index} × {column} ({why}); niji released it");
                    }
                    (None, Some(why)) => {
                        niji_only += 1;
                        *niji_adds.entry(why.clone()).or_default() += 1;
                    }
                    (None, None) => {}
                }
                a += usize::from(cell.acro.is_some());
                n += usize::from(cell.niji.is_some());
            }
            acro_only_total += acro_only;
            println!(
                "{:<46} {:>6} {:>6} {:>6} {:>6} {:>10} {:>10}",
                t.name,
                cells.len(),
                a,
                n,
                both,
                acro_only,
                niji_only
            );
        }
        println!("cells niji flags beyond ACRO, by niji's reason:");
        for (why, count) in &niji_adds {
            println!("  {count:>5}  {why}");
        }
        anyhow::ensure!(
            acro_only_total == 0,
            "{acro_only_total} cells flagged by ACRO were released by niji"
        );
        println!("every cell ACRO flags, niji flags too");
        Ok(())
    })
}
