//! `niji script …`: brought-in analysis scripts. A project's member submits a bundle of SQL
//! files (checked by the guard against the project's catalog), a committee member approves a
//! version, and the member runs exactly the approved files. Signed in with the user's token.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use niji_governance::ScriptFile;
use niji_sandbox::{Mode, SandboxError, Visiting};

use crate::applications::{SignIn, signed_in};
use crate::context::{Context, EnvArgs};

#[derive(Debug, Args)]
pub struct ScriptArgs {
    #[command(flatten)]
    who: SignIn,
    #[command(subcommand)]
    command: ScriptCommand,
}

/// A script of a project.
#[derive(Debug, Args)]
struct Named {
    #[arg(long)]
    project: String,
    #[arg(long)]
    name: String,
}

#[derive(Debug, Subcommand)]
enum ScriptCommand {
    /// Submit SQL files (run in the order given) as a new version, for approval.
    Submit {
        #[command(flatten)]
        script: Named,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Approve a submitted version (a committee member from outside the project).
    Approve {
        #[command(flatten)]
        script: Named,
        #[arg(long)]
        version: i64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reject a submitted version, saying why.
    Reject {
        #[command(flatten)]
        script: Named,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        reason: String,
    },
    /// Every version of the project's scripts.
    List {
        #[arg(long)]
        project: String,
    },
    /// Run the files of an approved version, statement by statement through the chokepoint.
    Run {
        #[command(flatten)]
        script: Named,
        /// On real data (otherwise the dummy store).
        #[arg(long)]
        real: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn read_files(paths: &[PathBuf]) -> anyhow::Result<Vec<ScriptFile>> {
    paths
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let sql =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(ScriptFile { name, sql })
        })
        .collect()
}

async fn act(
    v: &Visiting,
    user: &str,
    c: &ScriptCommand,
) -> anyhow::Result<Result<serde_json::Value, SandboxError>> {
    Ok(match c {
        ScriptCommand::Submit { script, files } => v
            .submit_script(user, &script.project, &script.name, &read_files(files)?)
            .await
            .map(|s| json(&s)),
        ScriptCommand::Approve {
            script,
            version,
            reason,
        } => decide(v, user, script, *version, true, reason).await,
        ScriptCommand::Reject {
            script,
            version,
            reason,
        } => decide(v, user, script, *version, false, reason).await,
        ScriptCommand::List { project } => v
            .platform()
            .scripts(user, project)
            .await
            .map(|s| json(&s))
            .map_err(Into::into),
        ScriptCommand::Run {
            script,
            real,
            files,
        } => {
            let mode = if *real { Mode::Real } else { Mode::Dummy };
            v.run_script(
                user,
                &script.project,
                &script.name,
                &read_files(files)?,
                mode,
            )
            .await
            .map(|outcomes| {
                serde_json::Value::Array(outcomes.iter().map(|o| o.to_json()).collect())
            })
        }
    })
}

async fn decide(
    v: &Visiting,
    user: &str,
    script: &Named,
    version: i64,
    approve: bool,
    reason: &str,
) -> Result<serde_json::Value, SandboxError> {
    v.platform()
        .decide_script(
            user,
            &script.project,
            &script.name,
            version,
            approve,
            reason,
        )
        .await
        .map(|s| json(&s))
        .map_err(Into::into)
}

fn json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

pub fn script(ctx: &Context, env: &EnvArgs, a: &ScriptArgs) -> anyhow::Result<ExitCode> {
    signed_in(ctx, env, &a.who, async |v, user| {
        act(v, user, &a.command).await
    })
}
