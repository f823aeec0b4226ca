//! The custodian's commands: synthetic deliveries, keys, ingest, the linkage report, the
//! catalog and the audit log. Each prints what a person running it needs and returns errors that never
//! carry key material or raw identifiers (the libraries' errors are built that way).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use niji_catalog::Catalog;
use niji_ingest::{IngestOptions, IngestReport, TableReport, TableStatus, linkage_report};
use niji_pseudo::CustodianKey;
use niji_store::Store;
use niji_synth::{SynthConfig, SynthReport};

use crate::context::Context;

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of persons.
    #[arg(long, default_value_t = 20_000)]
    pub persons: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory: extracts go to OUT/raw, the truth file to OUT/truth.
    #[arg(long, default_value = "./niji-raw")]
    pub out: PathBuf,
    /// First month of the data period (YYYYMM).
    #[arg(long, default_value_t = 202110)]
    pub start: u32,
    #[arg(long, default_value_t = 24)]
    pub months: u32,
    /// Effect of 後期高齢者 2割負担 on monthly outpatient visit days of 一般Ⅱ from 2022-10.
    #[arg(long, default_value_t = -0.031, allow_hyphen_values = true)]
    pub copay_effect: f64,
    /// Share of rows made defective, for the quarantine to catch.
    #[arg(long, default_value_t = 0.0005)]
    pub defect_rate: f64,
    /// A 難病DB delivery alone: every person is a certified patient (for a registry of
    /// national size, e.g. `--persons 1000000 --start 201904 --months 60`).
    #[arg(long)]
    pub nanbyo_registry: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the custodian key (32 random bytes, mode 0600, outside the data directory).
    Init,
    /// Show the key's public fingerprint (never the key).
    Show,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Directory of raw extracts (`<db>/<table>.csv`).
    #[arg(long, default_value = "./niji-raw/raw")]
    pub raw: PathBuf,
    /// Only these tables (`db` or `db.table`; repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Measure linkage against this truth file afterwards.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Memory a table's rows may hold while they are clustered, in MiB; beyond it, chunks
    /// spill to disk beside the staged table.
    #[arg(long, default_value_t = niji_ingest::DEFAULT_MEMORY_BUDGET >> 20)]
    pub memory_mb: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct LinkageArgs {
    #[arg(long, default_value = "./niji-raw/truth/truth.csv")]
    pub truth: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only this database.
    #[arg(long)]
    pub db: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain, check every MAC and the anchored head; exit non-zero on a problem.
    Verify {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The most recent entries, newest first; or, with --query, every entry about one query
    /// (a failure's cause, which researchers are never shown, is found here by its query id).
    Show {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        query: Option<String>,
    },
}

pub fn synth(a: &SynthArgs) -> anyhow::Result<SynthReport> {
    let mut cfg = SynthConfig::new(a.persons, a.seed, a.out.clone());
    cfg.start_ym = a.start;
    cfg.months = a.months;
    cfg.copay_effect = a.copay_effect;
    cfg.defect_rate = a.defect_rate;
    cfg.nanbyo_registry = a.nanbyo_registry;
    eprintln!(
        "synthesising {} persons (seed {}) into {}",
        a.persons,
        a.seed,
        a.out.display()
    );
    let tty = std::io::stderr().is_terminal();
    let report = niji_synth::generate(&cfg, &|persons, rows| {
        if tty {
            eprint!("\r  {persons} persons, {rows} rows");
        }
    })?;
    if tty {
        eprintln!();
    }
    println!("{:<32} {:>12} {:>10}", "extract", "rows", "defective");
    for (name, t) in &report.tables {
        println!(
            "{:<32} {:>12} {:>10}",
            name,
            t.rows,
            t.defective.values().sum::<u64>()
        );
    }
    let rows = report.total_rows();
    println!(
        "synthesised {} persons, {} rows in {:.1} s ({:.0} rows/s); truth kept apart in {}",
        report.persons,
        rows,
        report.seconds,
        rows as f64 / report.seconds.max(1e-9),
        a.out.join("truth").display()
    );
    Ok(report)
}

pub fn keys(ctx: &Context, c: &KeysCommand) -> anyhow::Result<()> {
    match c {
        KeysCommand::Init => {
            let key = CustodianKey::init(&ctx.key_file, &ctx.data_dir)?;
            ctx.record(
                &key,
                "keys.init",
                &serde_json::json!({ "key_version": key.version() }),
            )?;
            println!(
                "created custodian key {} at {} (mode 0600)",
                key.version(),
                ctx.key_file.display()
            );
        }
        KeysCommand::Show => {
            let key = CustodianKey::load(&ctx.key_file)?;
            println!(
                "custodian key {} at {}",
                key.version(),
                ctx.key_file.display()
            );
        }
    }
    Ok(())
}

fn print_table_line(t: &TableReport) {
    let name = format!("{}.{}", t.database, t.table);
    match &t.status {
        TableStatus::Absent => println!("{name:<28} absent from the delivery"),
        TableStatus::Refused(why) => println!("{name:<28} REFUSED: {why}"),
        TableStatus::Ingested => {
            let c = &t.counts;
            let q: Vec<String> = c
                .quarantined
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "{name:<28} {:>10} stored {:>6} quarantined {:>8.0} rows/s  {}",
                c.rows_stored,
                c.quarantined_total(),
                c.rows_read as f64 / t.seconds.max(1e-9),
                if q.is_empty() {
                    String::new()
                } else {
                    format!("[{}]", q.join(" "))
                }
            );
        }
    }
}

fn print_ingest_summary(report: &IngestReport) {
    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>12} {:>10} {:>10}",
        "identifiers", "id1", "id2", "id5", "研究用ID", "no ins. no.", "no 枝番", "not in hist"
    );
    for t in report.tables.iter().filter(|t| {
        matches!(t.status, TableStatus::Ingested) && t.counts.with_id2 + t.counts.with_id5 > 0
    }) {
        let c = &t.counts;
        println!(
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>12} {:>10} {:>10}",
            format!("{}.{}", t.database, t.table),
            c.with_id1,
            c.with_id2,
            c.with_id5,
            c.with_research_id,
            c.without_insured_number,
            c.without_branch,
            c.not_in_history
        );
    }
    let rows: u64 = report.tables.iter().map(|t| t.counts.rows_read).sum();
    println!(
        "\nperson registry: {} persons ({} new), {} insured numbers in the history; key {}",
        report.persons_in_registry,
        report.persons_added,
        report.insured_numbers_in_history,
        report.key_version
    );
    println!(
        "ingested {rows} rows in {:.1} s ({:.0} rows/s)",
        report.seconds,
        rows as f64 / report.seconds.max(1e-9)
    );
    if !report.undescribed_files.is_empty() {
        println!(
            "NOT INGESTED (no catalog description): {}",
            report.undescribed_files.join(", ")
        );
    }
}

pub fn ingest(ctx: &Context, a: &IngestArgs) -> anyhow::Result<IngestReport> {
    let catalog = ctx.catalog()?;
    let key = CustodianKey::load(&ctx.key_file)?;
    let mut opts = IngestOptions::new(a.raw.clone(), ctx.data_dir.clone());
    opts.only = a.only.clone();
    opts.memory_budget = a.memory_mb << 20;
    let quiet = matches!(a.format, Format::Json);
    let report = niji_ingest::ingest(&catalog, &key, &opts, &|t| {
        if !quiet {
            print_table_line(t);
        }
    })?;
    let tables: Vec<serde_json::Value> = report
        .tables
        .iter()
        .map(|t| {
            serde_json::json!({
                "table": format!("{}.{}", t.database, t.table),
                "status": t.status,
                "rows_stored": t.counts.rows_stored,
                "quarantined": t.counts.quarantined,
                "content_digest": t.content_digest,
            })
        })
        .collect();
    ctx.record(
        &key,
        "ingest",
        &serde_json::json!({
            "key_version": report.key_version,
            "tables": tables,
            "undescribed_files": report.undescribed_files,
            "persons_added": report.persons_added,
        }),
    )?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print_ingest_summary(&report),
    }
    if let Some(truth) = &a.truth {
        print_linkage(ctx, &catalog, truth, a.format)?;
    }
    let refused: Vec<String> = report
        .refused()
        .map(|t| format!("{}.{}", t.database, t.table))
        .collect();
    if !refused.is_empty() || !report.undescribed_files.is_empty() {
        bail!(
            "refused (fail closed): {} {}",
            refused.join(", "),
            report.undescribed_files.join(", ")
        );
    }
    Ok(report)
}

fn print_linkage(
    ctx: &Context,
    catalog: &Catalog,
    truth: &Path,
    format: Format,
) -> anyhow::Result<bool> {
    let report = linkage_report::measure(catalog, &Store::new(&ctx.data_dir), truth)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => println!("\n{report}"),
    }
    Ok(report.id5_meets_target)
}

pub fn linkage_report(ctx: &Context, a: &LinkageArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog()?;
    print_linkage(ctx, &catalog, &a.truth, a.format)?;
    Ok(())
}

pub fn catalog(ctx: &Context, a: &CatalogArgs) -> anyhow::Result<()> {
    let catalog = ctx.catalog()?;
    if let Some(db) = &a.db {
        catalog.database(db)?;
    }
    match a.format {
        Format::Table => print!("{}", niji_catalog::render_table(&catalog, a.db.as_deref())),
        Format::Json => {
            let value = match &a.db {
                Some(db) => serde_json::to_value(catalog.database(db)?)?,
                None => serde_json::to_value(&catalog)?,
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
    }
    Ok(())
}

pub fn audit(ctx: &Context, c: &AuditCommand) -> anyhow::Result<()> {
    let key = CustodianKey::load(&ctx.key_file)?;
    let (rt, log) = ctx.audit(&key)?;
    match c {
        AuditCommand::Verify { format } => {
            let v = rt.block_on(log.verify())?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
                Format::Table => {
                    let show = |v: Option<i64>| v.map_or("none".to_string(), |s| s.to_string());
                    println!(
                        "{} entries, head {}, anchored at {}",
                        v.entries,
                        show(v.head),
                        show(v.anchored)
                    );
                    for p in &v.problems {
                        println!("PROBLEM: {p}");
                    }
                    if v.is_intact() {
                        println!("audit log intact");
                    }
                }
            }
            if !v.is_intact() {
                bail!(
                    "the audit log has been tampered with ({} problems)",
                    v.problems.len()
                );
            }
        }
        AuditCommand::Show { limit, query } => {
            let entries = match query {
                Some(id) => rt.block_on(log.of_query(id))?,
                None => rt.block_on(log.recent(*limit))?,
            };
            for e in entries {
                println!(
                    "{:>6}  {}  {:<24} {:<12} {}",
                    e.seq, e.at, e.actor, e.action, e.detail
                );
            }
        }
    }
    Ok(())
}
