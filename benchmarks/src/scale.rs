//! `niji-bench scale`: the same jobs at growing sizes (1M, 10M and 100M receipts unless told):
//! the receipts' ingest beside DuckDB's, the analysis suite and a linkage join held and checked
//! through the chokepoint beside DuckDB over the same Parquet, peak memory, and how each cost
//! grows per 10× receipts (the goal: at most 11×).

use std::path::{Path, PathBuf};
use std::time::Instant;

use niji_governance::ApprovedTable;
use niji_pseudo::CustodianKey;
use niji_sandbox::{Mode, QueryRequest, Scope, Status, Visiting};

use crate::ingest::{Run, duckdb_ingest_once, niji_ingest_once};
use crate::visiting::{SUITE, duckdb_best, plain};
use crate::{Context, EnvArgs};

/// Receipts per synthetic person over the 24 synthetic months (7,401,035 from 500,000).
const RECEIPTS_PER_PERSON: f64 = 14.8;

/// NDB outpatient points in the months a person also used long-term care, by care level:
/// receipts joined to 介護DB claims by the shared (ID5-linked) pseudonym.
const LINKAGE: (&str, &str) = (
    "points in care months by care level (linkage)",
    "SELECT k.care_level, count(DISTINCT r.pid) AS persons, sum(r.points) AS points \
     FROM ndb.receipts r JOIN kaigo.claims k ON r.pid = k.pid AND r.claim_ym = k.service_ym \
     GROUP BY k.care_level ORDER BY k.care_level",
);

/// Where the scale benchmark reads and writes, and its peers' scripts.
pub struct ScaleArgs<'a> {
    pub receipts: &'a [u64],
    pub work: &'a Path,
    pub runs: usize,
    pub python: &'a Path,
    pub ingest_script: &'a Path,
    pub visiting_script: &'a Path,
}

/// One query's best times at one size, or why it gave no answer.
struct QueryFigures {
    name: &'static str,
    held: Result<f64, String>,
    checked: Result<f64, String>,
    duckdb: f64,
}

/// Everything measured at one size.
struct SizeFigures {
    receipts: u64,
    persons: u64,
    synthesis_s: Option<f64>,
    ingest: Run,
    duckdb_ingest: Run,
    duckdb_version: String,
    /// Diagnoses and 介護DB claims, ingested after the receipts into the same store.
    rest: Run,
    queries: Vec<QueryFigures>,
    suite_peak_mb: f64,
}

pub fn run(ctx: &Context, env: &EnvArgs, args: &ScaleArgs<'_>) -> anyhow::Result<()> {
    let mut sizes = Vec::new();
    for &receipts in args.receipts {
        let figures = measure(ctx, env, args, receipts)?;
        print_size(&figures, args.runs);
        sizes.push(figures);
    }
    print_growth(&sizes);
    Ok(())
}

fn measure(
    ctx: &Context,
    env: &EnvArgs,
    args: &ScaleArgs<'_>,
    receipts: u64,
) -> anyhow::Result<SizeFigures> {
    let persons = (receipts as f64 / RECEIPTS_PER_PERSON).ceil() as u64;
    let dir = args.work.join(format!("receipts-{receipts}"));
    let raw = dir.join("synth/raw");
    let synthesis_s = if raw.join("ndb/receipts.csv").exists() {
        None
    } else {
        eprintln!("synthesising {persons} persons into {}…", dir.display());
        let started = Instant::now();
        niji_synth::generate(
            &niji_synth::SynthConfig::new(persons, 11, dir.join("synth")),
            &|_, _| {},
        )?;
        let took = started.elapsed().as_secs_f64();
        prune_unread(&dir)?;
        Some(took)
    };
    let (csv_receipts, history) = (
        raw.join("ndb/receipts.csv"),
        raw.join("history/insured_history.csv"),
    );
    let key_file = dir.join("keys/custodian.key");
    let data = dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    if !key_file.exists() {
        CustodianKey::init(&key_file, &data)?;
    }
    let key = CustodianKey::load(&key_file)?;
    let catalog = ctx.catalog()?;
    // Both engines read the inputs from the page cache.
    for path in [&csv_receipts, &history] {
        std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
    }
    eprintln!("ingesting {}…", csv_receipts.display());
    let ingest = niji_ingest_once(&catalog, &key, &raw, &data, &["ndb.receipts"], None)?;
    let (duckdb_ingest, duckdb_version) = duckdb_ingest_once(
        args.python,
        args.ingest_script,
        &key,
        &csv_receipts,
        &history,
        &dir.join("duckdb_receipts.parquet"),
    )?;
    let rest = niji_ingest_once(
        &catalog,
        &key,
        &raw,
        &data,
        &["ndb.diagnoses", "kaigo.claims"],
        None,
    )?;

    let queries: Vec<(&'static str, &'static str)> =
        SUITE.iter().copied().chain([LINKAGE]).collect();
    let plain_queries: Vec<serde_json::Value> = queries
        .iter()
        .map(|(name, sql)| serde_json::json!({"name": name, "sql": plain(sql)}))
        .collect();
    let duck = duckdb_best(
        args.python,
        args.visiting_script,
        &data.join("store"),
        &dir,
        &plain_queries,
        args.runs,
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    crate::peak::reset()?;
    let timed = rt.block_on(time_suite(ctx, env, &data, key_file, &queries, args.runs))?;
    let suite_peak_mb = crate::peak::megabytes()?;
    Ok(SizeFigures {
        receipts: ingest.rows,
        persons,
        synthesis_s,
        ingest,
        duckdb_ingest,
        duckdb_version,
        rest,
        queries: timed
            .into_iter()
            .map(|(name, held, checked)| QueryFigures {
                name,
                held,
                checked,
                duckdb: duck[name].as_f64().unwrap_or(f64::NAN),
            })
            .collect(),
        suite_peak_mb,
    })
}

/// Removes the parts of a synthetic delivery the scale run never reads (NDB's procedures,
/// drugs and checkups, and the synthetic truth): at 100M receipts they are about 20 GB of the
/// delivery's 39, room the receipts' ingest needs for its spill files and store.
fn prune_unread(dir: &Path) -> anyhow::Result<()> {
    let ndb = dir.join("synth/raw/ndb");
    for file in ["procedures.csv", "drugs.csv", "checkups.csv"] {
        std::fs::remove_file(ndb.join(file))?;
    }
    std::fs::remove_dir_all(dir.join("synth/truth"))?;
    Ok(())
}

type Timed = (&'static str, Result<f64, String>, Result<f64, String>);

/// Each query's best time held and checked, alternated so that the machine's drift hits both
/// alike; a query that fails keeps its message, and the others still run.
async fn time_suite(
    ctx: &Context,
    env: &EnvArgs,
    data: &Path,
    key_file: PathBuf,
    queries: &[(&'static str, &'static str)],
    runs: usize,
) -> anyhow::Result<Vec<Timed>> {
    let visiting = crate::visiting::open(ctx, env, data, key_file, "datafusion").await?;
    let mut project = crate::visiting::spec("scale", "2021-10", "2023-09");
    project.tables.push(ApprovedTable {
        table: "kaigo.claims".into(),
        columns: ["service_ym", "sex", "care_level", "service_type", "units"]
            .map(String::from)
            .to_vec(),
    });
    project.linkage = vec![vec!["ndb".into(), "kaigo".into()]];
    visiting
        .platform()
        .create_project("bench", &project, visiting.catalog())
        .await?;
    let mut out = Vec::new();
    for &(name, sql) in queries {
        // A warm-up each, which also says whether the query answers at this size.
        let warm_held = once(&visiting, sql, false).await;
        let warm_checked = once(&visiting, sql, true).await;
        let (mut held, mut checked) = (warm_held.map(|_| f64::MAX), warm_checked.map(|_| f64::MAX));
        for _ in 0..runs {
            if let Ok(best) = held {
                held = once(&visiting, sql, false).await.map(|s| best.min(s));
            }
            if let Ok(best) = checked {
                checked = once(&visiting, sql, true).await.map(|s| best.min(s));
            }
        }
        out.push((name, held, checked));
    }
    Ok(out)
}

/// One run of `sql` in the scale project, held (checks off) or checked: its seconds, or what
/// it answered instead.
async fn once(visiting: &Visiting, sql: &str, checks: bool) -> Result<f64, String> {
    visiting.set_release_checks(checks);
    let started = Instant::now();
    let outcome = visiting
        .query(&QueryRequest {
            user: "bench".into(),
            scope: Scope::project("scale"),
            mode: Mode::Real,
            sql: sql.into(),
            via: "bench",
        })
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let answered = if checks {
        matches!(outcome.status, Status::Released | Status::Suppressed)
    } else {
        outcome.status == Status::Held
    };
    if answered {
        Ok(seconds)
    } else {
        Err(format!("{:?}: {}", outcome.status, outcome.message))
    }
}

fn ms(t: &Result<f64, String>) -> String {
    match t {
        Ok(s) => format!("{:.1} ms", s * 1e3),
        Err(_) => "failed".into(),
    }
}

fn print_size(f: &SizeFigures, runs: usize) {
    let throughput = |r: &Run| r.rows as f64 / r.seconds;
    println!(
        "\n{} receipts ({} persons){}; queries best of {runs} after a warm-up, {} cores",
        f.receipts,
        f.persons,
        f.synthesis_s
            .map(|s| format!(", synthesised in {s:.1} s"))
            .unwrap_or_default(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!(
        "| ingest | seconds | rows/s | peak |\n| --- | ---: | ---: | ---: |\n| niji, receipts | {:.2} | {:.0} | {:.0} MB |\n| DuckDB {}, receipts | {:.2} | {:.0} | {:.0} MB |\n| niji, diagnoses and 介護DB claims ({} rows) | {:.2} | {:.0} | {:.0} MB |",
        f.ingest.seconds,
        throughput(&f.ingest),
        f.ingest.peak_mb,
        f.duckdb_version,
        f.duckdb_ingest.seconds,
        throughput(&f.duckdb_ingest),
        f.duckdb_ingest.peak_mb,
        f.rest.rows,
        f.rest.seconds,
        throughput(&f.rest),
        f.rest.peak_mb,
    );
    println!(
        "niji / DuckDB ingest throughput: {:.2}x",
        throughput(&f.ingest) / throughput(&f.duckdb_ingest)
    );
    println!(
        "| query | held | checked | duckdb | checked/duckdb |\n| --- | ---: | ---: | ---: | ---: |"
    );
    let mut ratios = Vec::new();
    for q in &f.queries {
        let ratio = q.checked.as_ref().ok().map(|c| c / q.duckdb);
        ratios.extend(ratio);
        println!(
            "| {} | {} | {} | {:.1} ms | {} |",
            q.name,
            ms(&q.held),
            ms(&q.checked),
            q.duckdb * 1e3,
            ratio.map_or("-".into(), |r| format!("{r:.2}x"))
        );
    }
    for q in &f.queries {
        for (how, t) in [("held", &q.held), ("checked", &q.checked)] {
            if let Err(message) = t {
                println!("{} ({how}) failed: {message}", q.name);
            }
        }
    }
    if !ratios.is_empty() {
        let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        println!(
            "geometric mean of checked over DuckDB: {geomean:.2}x over {} queries; peak memory during the suite {:.0} MB",
            ratios.len(),
            f.suite_peak_mb
        );
    }
}

/// How a cost grows per 10× receipts between two sizes: `(t2/t1)^(1/log10(n2/n1))`.
fn per_tenfold(t1: f64, t2: f64, n1: u64, n2: u64) -> f64 {
    (t2 / t1).powf(1.0 / (n2 as f64 / n1 as f64).log10())
}

fn print_growth(sizes: &[SizeFigures]) {
    if sizes.len() < 2 {
        return;
    }
    let steps: Vec<(&SizeFigures, &SizeFigures)> =
        sizes.windows(2).map(|w| (&w[0], &w[1])).collect();
    let header: Vec<String> = steps
        .iter()
        .map(|(a, b)| format!("{}→{}", a.receipts, b.receipts))
        .collect();
    println!(
        "\ngrowth per 10× receipts (goal: at most 11×)\n| cost | {} |\n| --- |{}",
        header.join(" | "),
        " ---: |".repeat(steps.len())
    );
    let row = |name: &str, of: &dyn Fn(&SizeFigures) -> Option<f64>| {
        let cells: Vec<String> = steps
            .iter()
            .map(|(a, b)| match (of(a), of(b)) {
                (Some(t1), Some(t2)) => {
                    format!("{:.1}×", per_tenfold(t1, t2, a.receipts, b.receipts))
                }
                _ => "-".into(),
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("niji ingest", &|f| Some(f.ingest.seconds));
    row("DuckDB ingest", &|f| Some(f.duckdb_ingest.seconds));
    for (i, q) in sizes[0].queries.iter().enumerate() {
        row(&format!("{} checked", q.name), &|f| {
            f.queries[i].checked.as_ref().ok().copied()
        });
        row(&format!("{} duckdb", q.name), &|f| {
            Some(f.queries[i].duckdb)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::per_tenfold;

    #[test]
    fn growth_is_normalised_to_tenfold_steps() {
        // Linear cost over a 10× step is 10×; over a 100× step it is still 10× per 10×.
        assert!((per_tenfold(1.0, 10.0, 1_000, 10_000) - 10.0).abs() < 1e-9);
        assert!((per_tenfold(1.0, 100.0, 1_000, 100_000) - 10.0).abs() < 1e-9);
        // Quadratic cost over a 10× step is 100×.
        assert!((per_tenfold(2.0, 200.0, 5, 50) - 100.0).abs() < 1e-9);
    }
}
