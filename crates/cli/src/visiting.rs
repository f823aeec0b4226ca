//! Commands of the Visiting environment: users, projects, queries, the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use niji_governance::{ProjectSpec, Stored as _, UserRole, Vote};
use niji_sandbox::{
    DummyStoreMaker, LocalEngine, Mode, QueryRequest, Scope, Settings, Status, Visiting,
};

use crate::context::{Context, EnvArgs, custodian_actor};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints their API token once (only its digest is stored).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The organisation the user belongs to (`niji org add` first).
        #[arg(long)]
        organisation: Option<String>,
    },
    /// Add an organisation (applicants apply for theirs; reviewers from it are recused).
    AddOrganisation {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
    },
    /// Suspend a user pending review (alerts may do it too); audited.
    Suspend {
        #[arg(long)]
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Lift a suspension after review; audited.
    Reinstate {
        #[arg(long)]
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Set a user's portal password, read from standard input (one line; never an argument,
    /// which would stay in the shell's history and the process list); audited.
    Password {
        #[arg(long)]
        name: String,
    },
    /// List users and roles.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Researcher,
    Committee,
    Chair,
    OutputChecker,
    Custodian,
    Admin,
    /// An organisation's analyst: standard datasets and feasibility counts only.
    Analyst,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project from an approved spec (see sandbox/examples/project.toml).
    Create {
        #[arg(long)]
        spec: PathBuf,
    },
    /// Close a project: its workspace and held results are deleted and the deletion recorded.
    Close {
        #[arg(long)]
        id: String,
    },
    /// List projects.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[arg(long)]
    pub project: String,
    #[arg(long)]
    pub user: String,
    /// The user's API token.
    #[arg(long, env = "NIJI_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Run on the project's dummy data (rows are shown).
    #[arg(long, conflicts_with = "real", required_unless_present = "real")]
    pub dummy: bool,
    /// Run on real data (the result is held for disclosure control).
    #[arg(long)]
    pub real: bool,
    #[arg(long)]
    pub sql: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Output checking, as a researcher (list, show, request) or an output checker (list, show,
/// approve, reject).
#[derive(Debug, Args)]
pub struct OutputsArgs {
    #[arg(long)]
    pub user: String,
    /// The user's API token.
    #[arg(long, env = "NIJI_TOKEN", hide_env_values = true)]
    pub token: String,
    #[command(subcommand)]
    pub command: OutputsCommand,
}

#[derive(Debug, Subcommand)]
pub enum OutputsCommand {
    /// Checkers: the outputs awaiting votes. Researchers: their projects' held outputs.
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// An output's SQL, findings, votes; checkers also see its rows and what approval would
    /// leave masked.
    Show {
        #[arg(long)]
        id: String,
    },
    /// Ask output checkers to release an output you wrote.
    Request {
        #[arg(long)]
        id: String,
        #[arg(long)]
        justification: String,
    },
    /// Vote to release (the second approval releases what may leave).
    Approve {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Vote against release (one rejection ends the review).
    Reject {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8470")]
    pub http: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8471")]
    pub flight: SocketAddr,
    /// A TLS proxy serves the portal to browsers: cookies are `Secure` and `__Host-`, and
    /// HSTS is sent.
    #[arg(long)]
    pub behind_tls: bool,
    #[command(flatten)]
    pub engine: crate::ballista::EngineArgs,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub async fn open(ctx: &Context, env: &EnvArgs) -> anyhow::Result<Visiting> {
    open_on(ctx, env, Arc::new(LocalEngine)).await
}

/// The Visiting environment, its checked plans run on `engine`.
pub async fn open_on(
    ctx: &Context,
    env: &EnvArgs,
    engine: Arc<dyn niji_sandbox::Engine>,
) -> anyhow::Result<Visiting> {
    let settings = Settings {
        data_dir: ctx.data_dir.clone(),
        key_file: ctx.key_file.clone(),
        catalog_dir: ctx.catalog.clone(),
        policies_dir: env.policies.clone(),
        limits_file: env.limits.clone(),
        database: ctx.database.clone(),
    };
    let dummy = DummyStoreMaker::new(niji_ingest::synthetic::dummy_store);
    Visiting::open(settings, engine, dummy)
        .await
        .context("opening the Visiting environment")
}

pub fn user(ctx: &Context, env: &EnvArgs, c: &UserCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let v = open(ctx, env).await?;
        match c {
            UserCommand::Add {
                name,
                role,
                organisation,
            } => {
                let role = match role {
                    RoleArg::Researcher => UserRole::Researcher,
                    RoleArg::Committee => UserRole::Committee,
                    RoleArg::Chair => UserRole::Chair,
                    RoleArg::OutputChecker => UserRole::OutputChecker,
                    RoleArg::Custodian => UserRole::Custodian,
                    RoleArg::Admin => UserRole::Admin,
                    RoleArg::Analyst => UserRole::Analyst,
                };
                let actor = custodian_actor();
                let token = v.platform().add_user(&actor, name, role).await?;
                if let Some(org) = organisation {
                    v.platform().set_organisation(&actor, name, org).await?;
                }
                eprintln!("user {name} ({role}) created; the token is shown once:");
                println!("{token}");
            }
            UserCommand::AddOrganisation { id, name } => {
                v.platform()
                    .add_organisation(&custodian_actor(), id, name)
                    .await?;
                println!("organisation {id} added");
            }
            UserCommand::Suspend { name, reason } => {
                v.platform()
                    .suspend_user(&custodian_actor(), name, reason)
                    .await?;
                println!("user {name} suspended");
            }
            UserCommand::Reinstate { name, reason } => {
                v.platform()
                    .reinstate_user(&custodian_actor(), name, reason)
                    .await?;
                println!("user {name} reinstated");
            }
            UserCommand::Password { name } => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                let password = line.trim_end_matches(['\r', '\n']);
                v.platform()
                    .set_password(&custodian_actor(), name, password)
                    .await?;
                println!("password of {name} set; their portal sessions are ended");
            }
            UserCommand::List => {
                for u in v.platform().db().users().await? {
                    println!("{}\t{}", u.name, u.role);
                }
            }
        }
        Ok(())
    })
}

pub fn project(ctx: &Context, env: &EnvArgs, c: &ProjectCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let v = open(ctx, env).await?;
        match c {
            ProjectCommand::Create { spec } => {
                let text = std::fs::read_to_string(spec)
                    .with_context(|| format!("reading {}", spec.display()))?;
                let spec = ProjectSpec::from_toml(&text)?;
                v.platform()
                    .create_project(&custodian_actor(), &spec, v.catalog())
                    .await?;
                println!(
                    "project {} created ({} tables, expires {})",
                    spec.id,
                    spec.tables.len(),
                    spec.expires
                );
            }
            ProjectCommand::Close { id } => {
                let cert = v.close_project(&custodian_actor(), id).await?;
                println!(
                    "project {id} closed; deleted {} files ({} bytes), recorded in the audit log",
                    cert.files.len(),
                    cert.bytes
                );
            }
            ProjectCommand::List => {
                for p in v.platform().db().projects().await? {
                    println!(
                        "{}\t{:?}\texpires {}\t{}",
                        p.spec.id, p.state, p.spec.expires, p.spec.title
                    );
                }
            }
        }
        Ok(())
    })
}

/// Exit code 0 for ok/held/released/suppressed, 2 for refused, 1 for error.
pub fn query(ctx: &Context, env: &EnvArgs, a: &QueryArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let v = open(ctx, env).await?;
        let outcome = match v.platform().sign_in(&a.user, &a.token, "cli").await {
            Ok(user) => {
                v.query(&QueryRequest {
                    user: user.name,
                    scope: Scope::project(a.project.clone()),
                    mode: if a.real { Mode::Real } else { Mode::Dummy },
                    sql: a.sql.clone(),
                    via: "cli",
                })
                .await
            }
            Err(e) => niji_sandbox::QueryOutcome::failed(String::new(), &e.into()),
        };
        match a.format {
            Format::Json => println!("{}", outcome.to_json()),
            Format::Table => println!("{}", outcome.to_table()),
        }
        Ok(match outcome.status {
            Status::Refused => ExitCode::from(2),
            Status::Error => ExitCode::FAILURE,
            _ => ExitCode::SUCCESS,
        })
    })
}

/// Prints JSON; exit code 2 when refused or denied.
pub fn outputs(ctx: &Context, env: &EnvArgs, a: &OutputsArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let v = open(ctx, env).await?;
        let result = async {
            let user = v.platform().sign_in(&a.user, &a.token, "cli").await?.name;
            Ok::<_, niji_sandbox::SandboxError>(match &a.command {
                OutputsCommand::List { project } => {
                    serde_json::json!({"outputs": v.platform().list_outputs(&user, project.as_deref()).await?})
                }
                OutputsCommand::Show { id } => v.show_output(&user, id).await?.to_json(),
                OutputsCommand::Request { id, justification } => {
                    serde_json::to_value(v.request_release(&user, id, justification).await?)
                        .unwrap_or_default()
                }
                OutputsCommand::Approve { id, reason } => {
                    serde_json::to_value(v.vote(&user, id, Vote::Approve, reason).await?)
                        .unwrap_or_default()
                }
                OutputsCommand::Reject { id, reason } => {
                    serde_json::to_value(v.vote(&user, id, Vote::Reject, reason).await?)
                        .unwrap_or_default()
                }
            })
        }
        .await;
        crate::context::print_answer(result)
    })
}

pub fn serve(ctx: &Context, env: &EnvArgs, a: &ServeArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let v = Arc::new(open_on(ctx, env, a.engine.engine().await?).await?);
        // A server stopped between a deciding vote and its release left the decision half
        // made: it is carried out before anyone is served.
        let finished = v.finish_interrupted_reviews().await?;
        if finished > 0 {
            eprintln!("finished {finished} output review decision(s) a stopped server had recorded");
        }
        let portal = niji_portal::PortalSettings {
            behind_tls: a.behind_tls,
        };
        let running = niji_server::serve_with(v, a.http, a.flight, portal).await?;
        eprintln!(
            "niji serving: HTTP http://{} (the portal at /, the JSON API under /api/v1), Flight SQL grpc://{}; Ctrl-C stops",
            running.http, running.flight
        );
        tokio::signal::ctrl_c().await?;
        running.shutdown().await;
        Ok(())
    })
}

/// The quick start's tour of the Visiting environment: the example project and its users
/// (created once; their tokens go to an owner-only file beside the key), a query on dummy
/// data, the same on real data (checked and released, small cells masked), rows of real data
/// (held), and an attack (refused).
pub fn demo(ctx: &Context, env: &EnvArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let v = open(ctx, env).await?;
        // The examples sit beside the limits file (sandbox/).
        let examples = env
            .limits
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("examples");
        let tokens_file = ctx.key_file.with_file_name("demo-tokens.txt");
        let mut tokens: Vec<(String, String)> = std::fs::read_to_string(&tokens_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(u, t)| (u.to_string(), t.to_string()))
            .collect();
        println!("application review (`niji application`, `niji review`):");
        let reviewed =
            crate::story::review_example(&v, &examples.join("application.toml"), &mut tokens).await;
        let text: String = tokens.iter().map(|(u, t)| format!("{u}={t}\n")).collect();
        niji_ingest::write_owner_only(&tokens_file, text.as_bytes())?;
        let (spec, signed) = reviewed?;
        println!("users' tokens in {}", tokens_file.display());
        // Portal passwords for the same users, made once, beside the tokens (owner only).
        let passwords_file = ctx.key_file.with_file_name("demo-passwords.txt");
        if !passwords_file.exists() {
            let mut text = String::new();
            for (user, _) in &tokens {
                let password = niji_governance::new_token("")?[..24].to_string();
                v.platform()
                    .set_password(&custodian_actor(), user, &password)
                    .await?;
                text.push_str(&format!("{user}={password}\n"));
            }
            niji_ingest::write_owner_only(&passwords_file, text.as_bytes())?;
        }
        println!(
            "portal passwords in {} (`niji serve`, then http://127.0.0.1:8470/)",
            passwords_file.display()
        );
        let lead = spec.members.first().map(|m| m.user.clone()).unwrap_or_default();
        let sql = "SELECT claim_ym >= 202210 AS after_oct_2022, copay_rate, count(DISTINCT pid) AS persons, avg(days) AS days FROM ndb.receipts WHERE setting = 1 GROUP BY 1, 2 ORDER BY 1, 2";
        let tour = [
            (Mode::Dummy, sql),
            (Mode::Real, sql),
            (Mode::Real, "SELECT prefecture, count(*) AS receipts FROM ndb.receipts WHERE copay_rate = 2 GROUP BY prefecture ORDER BY prefecture"),
            (Mode::Real, "SELECT pid, claim_ym, days FROM ndb.receipts LIMIT 5"),
            (Mode::Dummy, "SELECT id5, birth_date FROM ndb.receipts"),
        ];
        let mut masked = None;
        let mut signed = signed;
        for (mode, sql) in tour {
            println!("\n{lead}@{} ({}): {sql}", spec.id, mode.as_str());
            let o = v
                .query(&QueryRequest {
                    user: lead.clone(),
                    scope: Scope::project(spec.id.clone()),
                    mode,
                    sql: sql.into(),
                    via: "cli",
                })
                .await;
            println!("{}", o.to_table());
            if let Some(signed) = signed.take()
                && o.status != Status::Refused
                && o.status != Status::Error
            {
                println!(
                    "time from the chair's signature to the first allowed query: {:.0} ms",
                    signed.elapsed().as_secs_f64() * 1000.0
                );
            }
            // Withheld rows are not reviewed (no checker may waive them); masked cells are.
            if o.status == Status::Suppressed && !o.suppressed.is_empty() {
                masked = Some(o.query_id);
            }
        }
        // Output checking: asking for a masked table's release. In this synthetic data the
        // judgement rules (facilities, dominance) mask nothing, so every masked cell rests on
        // too few persons, and checkers are not even asked: approval could release nothing.
        if let Some(id) = masked {
            println!("\n{lead}: outputs request {id}");
            let justification = "Persons by prefecture for the 2割負担 report; please release the masked cells.";
            match v.request_release(&lead, &id, justification).await {
                Ok(o) => println!("  {}", o.review.as_str()),
                Err(e) => println!("  {}: {}", e.status().as_str(), e.public_message()),
            }
        }
        Ok(())
    })
}
