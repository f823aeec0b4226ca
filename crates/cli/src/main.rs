//! `niji`: the platform's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod applications;
mod ballista;
mod consent;
mod context;
mod custodian;
mod datasets;
mod demo;
mod feasibility;
mod scripts;
mod story;
mod visiting;

#[derive(Debug, Parser)]
#[command(
    name = "niji",
    version,
    about = "Secondary use of Japan's public health databases, without holding the people in them"
)]
struct Cli {
    /// Store and platform state.
    #[arg(
        long,
        global = true,
        default_value = "./niji-data",
        env = "NIJI_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// The custodian key, kept outside the data directory.
    #[arg(
        long,
        global = true,
        default_value = "./niji-keys/custodian.key",
        env = "NIJI_KEY_FILE"
    )]
    key_file: PathBuf,
    /// The platform database: `postgres://…` for PostgreSQL; the SQLite file `niji.db` in the
    /// data directory when not given.
    #[arg(long, global = true, env = "NIJI_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Catalog directory (`catalog/*.toml`).
    #[arg(long, global = true, default_value = "./catalog", env = "NIJI_CATALOG")]
    catalog: PathBuf,
    #[command(flatten)]
    env: context::EnvArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The quick-start job: synthesise, create a key if there is none, ingest, report.
    Demo(demo::DemoArgs),
    /// Generate raw extracts (and a truth file kept apart) as a custodian receives them.
    Synth(custodian::SynthArgs),
    /// Custodian key management.
    Keys {
        #[command(subcommand)]
        command: custodian::KeysCommand,
    },
    /// Pseudonymise raw extracts into the Parquet store.
    Ingest(custodian::IngestArgs),
    /// Measure linkage quality of the identifiers against a truth file.
    LinkageReport(custodian::LinkageArgs),
    /// Print the catalog.
    Catalog(custodian::CatalogArgs),
    /// The audit log: verify the chain and its anchor, or show recent entries.
    Audit {
        #[command(subcommand)]
        command: custodian::AuditCommand,
    },
    /// Users of the platform and their API tokens.
    User {
        #[command(subcommand)]
        command: visiting::UserCommand,
    },
    /// Projects: the approved scope researchers work in.
    Project {
        #[command(subcommand)]
        command: visiting::ProjectCommand,
    },
    /// Run one SQL statement in a project, through the query chokepoint.
    Query(visiting::QueryArgs),
    /// Output checking: held outputs, release requests and the checkers' votes.
    Outputs(visiting::OutputsArgs),
    /// Applications: draft, submit, amend, accept the decision (the applicant's side).
    Application(applications::ApplicationArgs),
    /// Application review: queue, assign, conflicts, votes, decisions (the committee's side).
    Review(applications::ReviewArgs),
    /// Brought-in SQL scripts: submit, approve (a committee member), run the approved files.
    Script(scripts::ScriptArgs),
    /// Consent withdrawals of 難病DB and 小慢DB (the custodian's).
    Consent(consent::ConsentArgs),
    /// Standard datasets: build, approve organisations, request, sign off, download.
    Dataset(datasets::DatasetArgs),
    /// Feasibility counts for analysts of approved organisations, within quotas.
    Feasibility(feasibility::FeasibilityArgs),
    /// Serve the HTTP JSON API and the Flight SQL endpoint.
    Serve(visiting::ServeArgs),
    /// The scheduler and executor processes of a Ballista cluster that runs niji's plans.
    Ballista(ballista::BallistaArgs),
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Demo(_) => "demo",
        Command::Synth(_) => "synth",
        Command::Keys { .. } => "keys",
        Command::Ingest(_) => "ingest",
        Command::LinkageReport(_) => "linkage-report",
        Command::Catalog(_) => "catalog",
        Command::Audit { .. } => "audit",
        Command::User { .. } => "user",
        Command::Project { .. } => "project",
        Command::Query(_) => "query",
        Command::Outputs(_) => "outputs",
        Command::Application(_) => "application",
        Command::Review(_) => "review",
        Command::Script(_) => "script",
        Command::Consent(_) => "consent",
        Command::Dataset(_) => "dataset",
        Command::Feasibility(_) => "feasibility",
        Command::Serve(_) => "serve",
        Command::Ballista(_) => "ballista",
    }
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
    let _span = tracing::info_span!("command", name = command_name(&cli.command)).entered();
    let database = match cli
        .database_url
        .as_deref()
        .map(niji_audit::DatabaseUrl::parse)
    {
        None => None,
        Some(Ok(url)) => Some(url),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx = context::Context {
        database,
        data_dir: cli.data_dir,
        key_file: cli.key_file,
        catalog: cli.catalog,
    };
    let result = match cli.command {
        Command::Demo(a) => demo::demo(&ctx, &cli.env, &a),
        Command::Synth(a) => custodian::synth(&a).map(|_| ()),
        Command::Keys { command } => custodian::keys(&ctx, &command),
        Command::Ingest(a) => custodian::ingest(&ctx, &a).map(|_| ()),
        Command::LinkageReport(a) => custodian::linkage_report(&ctx, &a),
        Command::Catalog(a) => custodian::catalog(&ctx, &a),
        Command::Audit { command } => custodian::audit(&ctx, &command),
        Command::User { command } => visiting::user(&ctx, &cli.env, &command),
        Command::Project { command } => visiting::project(&ctx, &cli.env, &command),
        Command::Query(a) => match visiting::query(&ctx, &cli.env, &a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Outputs(a) => match visiting::outputs(&ctx, &cli.env, &a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Application(a) => match applications::application(&ctx, &cli.env, &a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Review(a) => match applications::review(&ctx, &cli.env, &a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Script(a) => match scripts::script(&ctx, &cli.env, &a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Consent(a) => match consent::consent(&ctx, &cli.env, &a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Dataset(a) => match datasets::dataset(&ctx, &cli.env, &a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Feasibility(a) => match feasibility::feasibility(&ctx, &cli.env, &a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Serve(a) => visiting::serve(&ctx, &cli.env, &a),
        Command::Ballista(a) => ballista::ballista(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
