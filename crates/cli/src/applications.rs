//! `niji application …` (the applicant's side) and `niji review …` (the committee's), signed
//! in with the user's token like every other user command. Prints JSON; exit code 2 when
//! refused or denied (with the reason, and each problem of a form by its field).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use niji_governance::{ApplicationForm, Conditions, DecisionOutcome, ReviewVote};
use niji_sandbox::{SandboxError, Visiting};

use crate::context::{Context, EnvArgs, print_answer};
use crate::visiting::{open, runtime};

/// Who is acting.
#[derive(Debug, Args)]
pub struct SignIn {
    #[arg(long)]
    pub user: String,
    /// The user's API token.
    #[arg(long, env = "NIJI_TOKEN", hide_env_values = true)]
    pub token: String,
}

#[derive(Debug, Args)]
pub struct ApplicationArgs {
    #[command(flatten)]
    pub who: SignIn,
    #[command(subcommand)]
    pub command: ApplicationCommand,
}

#[derive(Debug, Subcommand)]
pub enum ApplicationCommand {
    /// Save a new draft from a form (TOML, see sandbox/examples/application.toml).
    Draft {
        #[arg(long)]
        form: PathBuf,
    },
    /// Draft an amendment of a live project you lead (the same review; the project changes
    /// in place on acceptance).
    Amend {
        #[arg(long)]
        project: String,
        #[arg(long)]
        form: PathBuf,
    },
    /// Replace a draft's form (or one sent back for revision).
    Edit {
        id: String,
        #[arg(long)]
        form: PathBuf,
    },
    /// Submit for review (refused, field by field, while the form has problems).
    Submit { id: String },
    /// Withdraw an application that is not live yet.
    Withdraw { id: String },
    /// Accept the signed decision and its conditions: the project goes live.
    Accept { id: String },
    /// An application's page: form, state, due date, votes you may see, decisions, phase times.
    Show { id: String },
    /// Your applications.
    List,
    /// As a project's lead: the completion report that close-out waits for.
    Report {
        #[arg(long)]
        project: String,
        /// A text file: what was done with the data and what was published.
        #[arg(long)]
        file: PathBuf,
    },
    /// What you were told.
    Notifications {
        #[arg(long)]
        unread: bool,
    },
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    pub who: SignIn,
    #[command(subcommand)]
    pub command: ReviewCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VoteArg {
    Approve,
    ApproveWithConditions,
    Revise,
    Reject,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutcomeArg {
    Approved,
    RevisionRequested,
    Rejected,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// The chair's queue (every application in review), or a member's (their assignments).
    Queue,
    /// The chair assigns a member to review some of the databases asked for.
    Assign {
        id: String,
        #[arg(long)]
        reviewer: String,
        /// Databases the member reviews as an expert (comma-separated).
        #[arg(long, value_delimiter = ',')]
        databases: Vec<String>,
    },
    /// Declare a conflict of interest (you are recused).
    Conflict {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Vote on the submitted version, with comments per section (`--comment data=…`).
    Vote {
        id: String,
        #[arg(long, value_enum)]
        vote: VoteArg,
        #[arg(long = "comment", value_parser = section_comment)]
        comments: Vec<(String, String)>,
    },
    /// The chair signs the decision; conditions (TOML) only with an approval.
    Decide {
        id: String,
        #[arg(long, value_enum)]
        outcome: OutcomeArg,
        #[arg(long)]
        conditions: Option<PathBuf>,
        #[arg(long)]
        reason: String,
    },
}

fn section_comment(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| "a comment is SECTION=TEXT".to_string())
}

fn read_form(path: &PathBuf) -> anyhow::Result<ApplicationForm> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ApplicationForm::from_toml(&text)?)
}

type Answer = Result<serde_json::Value, SandboxError>;

fn json(value: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

async fn applicant(v: &Visiting, user: &str, c: &ApplicationCommand) -> anyhow::Result<Answer> {
    let p = v.platform();
    let catalog = v.catalog();
    let forms = |path| read_form(path);
    Ok(async {
        Ok(match c {
            ApplicationCommand::Draft { form } => {
                let form = forms(form).map_err(|e| SandboxError::Config(e.to_string()))?;
                let id = p.draft_application(user, &form).await?;
                serde_json::json!({"application": id, "state": "draft", "problems": form.problems(catalog)})
            }
            ApplicationCommand::Amend { project, form } => {
                let form = forms(form).map_err(|e| SandboxError::Config(e.to_string()))?;
                let id = p.draft_amendment(user, project, &form).await?;
                serde_json::json!({"application": id, "state": "draft", "problems": form.problems(catalog)})
            }
            ApplicationCommand::Edit { id, form } => {
                let form = forms(form).map_err(|e| SandboxError::Config(e.to_string()))?;
                p.edit_application(user, id, &form).await?;
                serde_json::json!({"application": id, "problems": form.problems(catalog)})
            }
            ApplicationCommand::Submit { id } => {
                p.submit_application(user, id, catalog).await?;
                json(p.application_page(user, id, catalog).await?.application)
            }
            ApplicationCommand::Withdraw { id } => {
                p.withdraw_application(user, id).await?;
                serde_json::json!({"application": id, "state": "withdrawn"})
            }
            ApplicationCommand::Accept { id } => {
                let spec = p.accept_decision(user, id, catalog).await?;
                serde_json::json!({"application": id, "state": "active", "project": spec})
            }
            ApplicationCommand::Show { id } => json(v.application_page(user, id).await?),
            ApplicationCommand::List => json(p.my_applications(user, 500).await?),
            ApplicationCommand::Report { project, file } => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| SandboxError::Config(format!("{}: {e}", file.display())))?;
                json(p.report_completion(user, project, &text).await?)
            }
            ApplicationCommand::Notifications { unread } => json(p.notifications(user, *unread).await?),
        })
    }
    .await)
}

async fn committee(v: &Visiting, user: &str, c: &ReviewCommand) -> anyhow::Result<Answer> {
    let p = v.platform();
    let catalog = v.catalog();
    let conditions = match c {
        ReviewCommand::Decide {
            conditions: Some(path),
            ..
        } => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<Conditions>(&text)
                .with_context(|| format!("conditions in {}", path.display()))?
        }
        _ => Conditions::default(),
    };
    Ok(async {
        Ok(match c {
            ReviewCommand::Queue => json(p.review_queue(user, 500).await?),
            ReviewCommand::Assign {
                id,
                reviewer,
                databases,
            } => {
                let recused = p.assign_reviewer(user, id, reviewer, databases).await?;
                serde_json::json!({"application": id, "reviewer": reviewer, "recused": recused})
            }
            ReviewCommand::Conflict { id, reason } => {
                p.declare_conflict(user, id, reason).await?;
                serde_json::json!({"application": id, "recused": true})
            }
            ReviewCommand::Vote { id, vote, comments } => {
                let vote = match vote {
                    VoteArg::Approve => ReviewVote::Approve,
                    VoteArg::ApproveWithConditions => ReviewVote::ApproveWithConditions,
                    VoteArg::Revise => ReviewVote::Revise,
                    VoteArg::Reject => ReviewVote::Reject,
                };
                let comments: BTreeMap<String, String> = comments.iter().cloned().collect();
                p.vote_on_application(user, id, vote, &comments).await?;
                serde_json::json!({"application": id, "vote": vote})
            }
            ReviewCommand::Decide {
                id,
                outcome,
                reason,
                ..
            } => {
                let outcome = match outcome {
                    OutcomeArg::Approved => DecisionOutcome::Approved,
                    OutcomeArg::RevisionRequested => DecisionOutcome::RevisionRequested,
                    OutcomeArg::Rejected => DecisionOutcome::Rejected,
                };
                json(
                    p.decide_application(user, id, outcome, conditions, reason, catalog)
                        .await?,
                )
            }
        })
    }
    .await)
}

pub fn application(ctx: &Context, env: &EnvArgs, a: &ApplicationArgs) -> anyhow::Result<ExitCode> {
    signed_in(ctx, env, &a.who, async |v, user| {
        applicant(v, user, &a.command).await
    })
}

pub fn review(ctx: &Context, env: &EnvArgs, a: &ReviewArgs) -> anyhow::Result<ExitCode> {
    signed_in(ctx, env, &a.who, async |v, user| {
        committee(v, user, &a.command).await
    })
}

/// Signs `who` in and prints what `act` answers for them (or the refused sign-in).
pub fn signed_in(
    ctx: &Context,
    env: &EnvArgs,
    who: &SignIn,
    act: impl AsyncFnOnce(&Visiting, &str) -> anyhow::Result<Result<serde_json::Value, SandboxError>>,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let v = open(ctx, env).await?;
        let answer = match v.platform().sign_in(&who.user, &who.token, "cli").await {
            Ok(user) => act(&v, &user.name).await?,
            Err(e) => Err(e.into()),
        };
        print_answer(answer)
    })
}
