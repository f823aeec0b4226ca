//! `niji-bench`: niji's benchmarks, each a command that prints its figures beside a peer's
//! (DuckDB, plain DataFusion, ACRO) measured in the same run. Kept out of the product binary.
//! The method and the current table are in docs/benchmarks.md.

mod acro;
mod anonymise;
mod datasets;
mod hmac;
mod ingest;
mod load;
mod peak;
mod portal;
mod pseudonym;
mod registry;
mod review;
mod scale;
mod visiting;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use niji_catalog::Catalog;

#[derive(Debug, Parser)]
#[command(
    name = "niji-bench",
    version,
    about = "niji's benchmarks, side by side with a peer"
)]
struct Cli {
    /// The store a benchmark reads when it does not make its own (`pseudonym`).
    #[arg(
        long,
        global = true,
        default_value = "./niji-data",
        env = "NIJI_DATA_DIR"
    )]
    data_dir: PathBuf,
    #[arg(
        long,
        global = true,
        default_value = "./niji-keys/custodian.key",
        env = "NIJI_KEY_FILE"
    )]
    key_file: PathBuf,
    #[arg(long, global = true, default_value = "./catalog", env = "NIJI_CATALOG")]
    catalog: PathBuf,
    #[command(flatten)]
    env: EnvArgs,
    #[command(subcommand)]
    bench: Bench,
}

/// Where the Visiting environment's policies and limits are read from.
#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    #[arg(
        long,
        global = true,
        default_value = "./policies",
        env = "NIJI_POLICIES"
    )]
    pub policies: PathBuf,
    #[arg(
        long,
        global = true,
        default_value = "./sandbox/limits.toml",
        env = "NIJI_LIMITS"
    )]
    pub limits: PathBuf,
}

/// The checkout's paths a benchmark reads.
#[derive(Debug)]
pub struct Context {
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    pub catalog: PathBuf,
}

impl Context {
    fn catalog(&self) -> anyhow::Result<Catalog> {
        Catalog::load(&self.catalog)
            .with_context(|| format!("loading the catalog from {}", self.catalog.display()))
    }
}

/// The platform's size for the review and portal benchmarks, and how often each read is timed.
#[derive(Debug, clap::Args)]
struct PlatformScale {
    #[arg(long, default_value_t = 10_000)]
    applications: usize,
    #[arg(long, default_value_t = 100_000)]
    audit_entries: usize,
    #[arg(long, default_value_t = 200)]
    samples: usize,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Keyed identifier hashing: HMAC-SHA256 per second, on one core and on all.
    Hmac {
        #[arg(long, default_value_t = 20_000_000)]
        count: u64,
    },
    /// Read CSV, compute keyed identifiers, write Parquet: niji and DuckDB on the same receipts.
    Ingest {
        #[arg(long, default_value_t = 200_000)]
        persons: u64,
        /// Scratch directory (synthetic data, stores, outputs).
        #[arg(long, default_value = "./niji-bench")]
        work: PathBuf,
        /// Python with the duckdb package (see scripts/setup-python.sh).
        #[arg(long, env = "NIJI_PYTHON", default_value = ".venv/bin/python")]
        python: PathBuf,
        /// DuckDB's side of the job, found from the checkout (not from where niji was built).
        #[arg(long, default_value = "scripts/bench_duckdb_ingest.py")]
        script: PathBuf,
        /// Memory niji's ingest holds while clustering, in MiB (beyond it, chunks spill).
        #[arg(long)]
        memory_mb: Option<usize>,
    },
    /// The person registry at national sizes: build, save, load and the memory it holds.
    Registry {
        #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000, 30_000_000])]
        persons: Vec<u64>,
        /// The size to project the memory to (Japan's insured population is about 130M).
        #[arg(long, default_value_t = 130_000_000)]
        project_to: u64,
        #[arg(long, default_value = "./niji-bench-registry")]
        work: PathBuf,
    },
    /// Project pseudonyms over the stored receipts: an HMAC per row against a per-project
    /// dictionary looked up by person index, and distinct-person counting on each form.
    Pseudonym,
    /// The same tables checked by niji and by ACRO (PyPI `acro`), side by side.
    Acro {
        #[arg(long, default_value_t = 50_000)]
        persons: u64,
        #[arg(long, default_value = "./niji-bench-acro")]
        work: PathBuf,
        #[arg(long, env = "NIJI_PYTHON", default_value = ".venv/bin/python")]
        python: PathBuf,
        #[arg(long, default_value = "scripts/acro_check.py")]
        script: PathBuf,
    },
    /// Application review's reads (review queue, application page, applicant's list) at
    /// 10,000 applications and 100,000 audit entries, on SQLite and PostgreSQL side by side.
    Review {
        #[command(flatten)]
        scale: PlatformScale,
    },
    /// The portal's pages at 10,000 applications and 100,000 audit entries, served on
    /// loopback and asked over HTTP as their users would: p50 and p95 per page.
    Portal {
        #[command(flatten)]
        scale: PlatformScale,
        #[arg(long, default_value = "./niji-bench-portal")]
        work: PathBuf,
    },
    /// Researchers at once over HTTP and Flight SQL against `niji serve` on loopback, and
    /// another project's count beside a runaway query.
    Load {
        #[arg(long, default_value_t = 50_000)]
        persons: u64,
        #[arg(long, default_value_t = 50)]
        researchers: usize,
        /// How long the load lasts.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Mean pause of a researcher between queries (uniform, up to twice this).
        #[arg(long, default_value_t = 1000)]
        think_ms: u64,
        /// The time limit the runaway query runs out.
        #[arg(long, default_value_t = 15)]
        runaway_seconds: u64,
        #[arg(long, default_value = "./niji-bench-load")]
        work: PathBuf,
    },
    /// Standard datasets on a synthetic 難病DB: each built through the checks beside DuckDB's
    /// plain aggregation, and the time from an analyst's request to the file.
    Datasets {
        #[arg(long, default_value_t = 1_000_000)]
        patients: u64,
        #[arg(long, default_value = "./niji-bench-datasets")]
        work: PathBuf,
        #[arg(long, env = "NIJI_PYTHON", default_value = ".venv/bin/python")]
        python: PathBuf,
        #[arg(long, default_value = "scripts/bench_duckdb_visiting.py")]
        script: PathBuf,
    },
    /// Anonymised record-level extracts: niji's anonymiser beside anjana (PyPI) on the same
    /// prepared extract, hierarchies, k and suppression limit, measured by one evaluator.
    Anonymise {
        #[arg(long, default_value_t = 100_000)]
        patients: u64,
        #[arg(long, default_value = "./niji-bench-anonymise")]
        work: PathBuf,
        #[arg(long, env = "NIJI_PYTHON", default_value = ".venv/bin/python")]
        python: PathBuf,
        #[arg(long, default_value = "scripts/bench_anjana.py")]
        script: PathBuf,
    },
    /// The same jobs at 1M, 10M and 100M receipts: ingest beside DuckDB's, the analysis suite
    /// and a linkage join held and checked beside DuckDB, peak memory, growth per 10×.
    Scale {
        /// Sizes in receipts (about 14.8 per synthetic person).
        #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64, 10_000_000, 100_000_000])]
        receipts: Vec<u64>,
        /// Scratch directory: a synthetic delivery per size is kept and reused.
        #[arg(long, default_value = "./niji-bench-scale")]
        work: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, env = "NIJI_PYTHON", default_value = ".venv/bin/python")]
        python: PathBuf,
        #[arg(long, default_value = "scripts/bench_duckdb_ingest.py")]
        ingest_script: PathBuf,
        #[arg(long, default_value = "scripts/bench_duckdb_visiting.py")]
        visiting_script: PathBuf,
    },
    /// Analysis queries on 10M+ synthetic receipts: plain DataFusion, the same through the
    /// chokepoint, and DuckDB, on the same Parquet.
    Visiting {
        /// 700,000 persons give about 10.4M receipts.
        #[arg(long, default_value_t = 700_000)]
        persons: u64,
        #[arg(long, default_value = "./niji-bench-visiting")]
        work: PathBuf,
        /// Best of this many runs: fewer do not average out this machine's drift.
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Only the queries whose name contains this (repeatable; all when none).
        #[arg(long = "query")]
        queries: Vec<String>,
        #[arg(long, env = "NIJI_PYTHON", default_value = ".venv/bin/python")]
        python: PathBuf,
        #[arg(long, default_value = "scripts/bench_duckdb_visiting.py")]
        script: PathBuf,
        /// Where niji's queries run: datafusion, ballista-standalone or ballista://host:port.
        #[arg(long, default_value = "datafusion")]
        engine: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NIJI_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let ctx = Context {
        data_dir: cli.data_dir,
        key_file: cli.key_file,
        catalog: cli.catalog,
    };
    let env = cli.env;
    let result = match cli.bench {
        Bench::Hmac { count } => hmac::run(count),
        Bench::Ingest {
            persons,
            work,
            python,
            script,
            memory_mb,
        } => ingest::run(&ctx, persons, &work, &python, &script, memory_mb),
        Bench::Pseudonym => pseudonym::run(&ctx),
        Bench::Registry {
            persons,
            project_to,
            work,
        } => registry::run(&persons, &work, project_to),
        Bench::Review { scale } => review::run(
            &ctx,
            &env,
            scale.applications,
            scale.audit_entries,
            scale.samples,
        ),
        Bench::Portal { scale, work } => portal::run(
            &ctx,
            &env,
            scale.applications,
            scale.audit_entries,
            scale.samples,
            &work,
        ),
        Bench::Load {
            persons,
            researchers,
            seconds,
            think_ms,
            runaway_seconds,
            work,
        } => load::run(
            &ctx,
            &env,
            &load::LoadArgs {
                persons,
                researchers,
                seconds,
                think_ms,
                runaway_seconds,
            },
            &work,
        ),
        Bench::Datasets {
            patients,
            work,
            python,
            script,
        } => datasets::run(&ctx, &env, patients, &work, &python, &script),
        Bench::Anonymise {
            patients,
            work,
            python,
            script,
        } => anonymise::run(&ctx, &env, patients, &work, &python, &script),
        Bench::Visiting {
            persons,
            work,
            runs,
            queries,
            python,
            script,
            engine,
        } => visiting::run(
            &ctx,
            &env,
            persons,
            &work,
            visiting::Rounds {
                runs,
                engine: &engine,
                queries: &queries,
            },
            &python,
            &script,
        ),
        Bench::Scale {
            receipts,
            work,
            runs,
            python,
            ingest_script,
            visiting_script,
        } => scale::run(
            &ctx,
            &env,
            &scale::ScaleArgs {
                receipts: &receipts,
                work: &work,
                runs,
                python: &python,
                ingest_script: &ingest_script,
                visiting_script: &visiting_script,
            },
        ),
        Bench::Acro {
            persons,
            work,
            python,
            script,
        } => acro::run(&ctx, &env, persons, &work, &python, &script),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
