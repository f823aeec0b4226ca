//! `niji-bench ingest`: read CSV, compute keyed identifiers, write Parquet: niji and DuckDB on
//! the same receipts, alternating.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use niji_ingest::IngestOptions;
use niji_pseudo::CustodianKey;
use niji_synth::SynthConfig;

use crate::Context;

pub fn run(
    ctx: &Context,
    persons: u64,
    work: &Path,
    python: &Path,
    script: &Path,
    memory_mb: Option<usize>,
) -> anyhow::Result<()> {
    let delivery = work.join(format!("synth-{persons}"));
    let raw = delivery.join("raw");
    if !raw.join("ndb/receipts.csv").exists() {
        let mut cfg = SynthConfig::new(persons, 7, delivery);
        cfg.start_ym = 202110;
        cfg.months = 24;
        cfg.copay_effect = -0.031;
        cfg.defect_rate = 0.0;
        eprintln!("synthesising {persons} persons into {}", cfg.out.display());
        niji_synth::generate(&cfg, &|_, _| {})?;
    }
    let key_file = work.join("keys/custodian.key");
    let data_dir = work.join("data");
    if !key_file.exists() {
        CustodianKey::init(&key_file, &data_dir)?;
    }
    let key = CustodianKey::load(&key_file)?;
    let catalog = ctx.catalog()?;
    let receipts = raw.join("ndb/receipts.csv");
    let history = raw.join("history/insured_history.csv");
    let mb = std::fs::metadata(&receipts)?.len() as f64 / 1e6;

    // Each engine runs twice, alternating, after a warm-up read of the inputs, and the better
    // run counts: the page cache and the machine's other load treat both alike.
    for path in [&receipts, &history] {
        std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
    }
    let run_niji = || -> anyhow::Result<(f64, u64, f64)> {
        let _ = std::fs::remove_dir_all(&data_dir);
        let run = niji_ingest_once(
            &catalog,
            &key,
            &raw,
            &data_dir,
            &["ndb.receipts"],
            memory_mb,
        )?;
        Ok((run.seconds, run.rows, run.peak_mb))
    };
    let out = work.join("duckdb_receipts.parquet");
    let run_duckdb = || -> anyhow::Result<(f64, u64, String, f64)> {
        let (run, version) = duckdb_ingest_once(python, script, &key, &receipts, &history, &out)?;
        Ok((run.seconds, run.rows, version, run.peak_mb))
    };
    let mut niji_runs = Vec::new();
    let mut duck_runs = Vec::new();
    for _ in 0..2 {
        niji_runs.push(run_niji()?);
        duck_runs.push(run_duckdb()?);
    }
    let (niji_s, rows, niji_peak) = niji_runs
        .iter()
        .copied()
        .fold((f64::MAX, 0, 0.0), |a, b| if b.0 < a.0 { b } else { a });
    let (duck_s, duck_rows, version, duck_peak) =
        duck_runs
            .iter()
            .cloned()
            .fold((f64::MAX, 0, String::new(), 0.0), |a, b| {
                if b.0 < a.0 { b } else { a }
            });
    let seconds = |v: Vec<f64>| {
        v.iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "runs (s): niji {}; DuckDB {}",
        seconds(niji_runs.iter().map(|r| r.0).collect()),
        seconds(duck_runs.iter().map(|r| r.0).collect())
    );

    println!(
        "job: read receipts CSV ({mb:.0} MB, {rows} rows) + insured-number history, keyed SHA-256 identifiers (ID1, ID2, ID5 via the history), write Parquet (zstd)"
    );
    println!(
        "{:<28} {:>10} {:>14} {:>14}",
        "engine", "seconds", "rows/s", "peak memory"
    );
    println!(
        "{:<28} {:>10.2} {:>14.0} {:>11.0} MB",
        "niji ingest",
        niji_s,
        rows as f64 / niji_s,
        niji_peak
    );
    println!(
        "{:<28} {:>10.2} {:>14.0} {:>11.0} MB",
        format!("DuckDB {version}"),
        duck_s,
        duck_rows as f64 / duck_s,
        duck_peak
    );
    println!(
        "niji / DuckDB throughput: {:.2}x",
        (rows as f64 / niji_s) / (duck_rows as f64 / duck_s)
    );
    println!(
        "(niji also validates, normalises names and numbers, quarantines bad rows and hashes with HMAC; DuckDB does sha256(key || fields) without normalisation)"
    );
    Ok(())
}

/// One timed job: its seconds, the rows it read and its peak resident memory in MiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub seconds: f64,
    pub rows: u64,
    pub peak_mb: f64,
}

/// niji's ingest of the `only` tables of the delivery `raw` into `data_dir`, timed, with the
/// rows read from all of them.
pub(crate) fn niji_ingest_once(
    catalog: &niji_catalog::Catalog,
    key: &CustodianKey,
    raw: &Path,
    data_dir: &Path,
    only: &[&str],
    memory_mb: Option<usize>,
) -> anyhow::Result<Run> {
    let mut opts = IngestOptions::new(raw.to_path_buf(), data_dir.to_path_buf());
    opts.only = only.iter().map(|t| t.to_string()).collect();
    if let Some(mb) = memory_mb {
        opts.memory_budget = mb << 20;
    }
    crate::peak::reset()?;
    let t = Instant::now();
    let report = niji_ingest::ingest(catalog, key, &opts, &|_| {})?;
    let seconds = t.elapsed().as_secs_f64();
    let rows = report.tables.iter().map(|t| t.counts.rows_read).sum();
    Ok(Run {
        seconds,
        rows,
        peak_mb: crate::peak::megabytes()?,
    })
}

/// DuckDB's version of the receipts' ingest (`script`, run by `python`) into `out`, timed by
/// the script itself, and DuckDB's version.
pub(crate) fn duckdb_ingest_once(
    python: &Path,
    script: &Path,
    key: &CustodianKey,
    receipts: &Path,
    history: &Path,
    out: &Path,
) -> anyhow::Result<(Run, String)> {
    let bench_key = hex_of(&*key.derive_labelled(b"niji/bench/duckdb"));
    let output = Command::new(python)
        .arg(script)
        .arg(receipts)
        .arg(history)
        .arg(out)
        .env("NIJI_BENCH_KEY", &bench_key)
        .output()
        .with_context(|| {
            format!(
                "running {} (install with scripts/setup-python.sh)",
                python.display()
            )
        })?;
    if !output.status.success() {
        bail!(
            "DuckDB benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let seconds: f64 = field("seconds=")
        .and_then(|v| v.parse().ok())
        .context("DuckDB script printed no timing")?;
    let rows: u64 = field("rows=").and_then(|v| v.parse().ok()).unwrap_or(0);
    let peak_mb: f64 = field("peak_mb=")
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    Ok((
        Run {
            seconds,
            rows,
            peak_mb,
        },
        field("duckdb=").unwrap_or_default(),
    ))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
