//! `niji feasibility count …`: a self-service patient count for an analyst of an approved
//! organisation, within the quotas of `policies/feasibility.toml`. Signed in with the user's
//! token.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use niji_sandbox::{CountRequest, SandboxError, Visiting};

use crate::applications::{SignIn, signed_in};
use crate::context::{Context, EnvArgs};

#[derive(Debug, Args)]
pub struct FeasibilityArgs {
    #[command(flatten)]
    who: SignIn,
    #[command(subcommand)]
    command: FeasibilityCommand,
}

#[derive(Debug, Subcommand)]
enum FeasibilityCommand {
    /// Patients with a disease in a fiscal year, optionally narrowed (ranges inclusive).
    Count {
        /// 告示番号.
        #[arg(long)]
        disease: u16,
        #[arg(long)]
        year: u16,
        #[arg(long)]
        severity_from: Option<u8>,
        #[arg(long)]
        severity_to: Option<u8>,
        #[arg(long)]
        age_from: Option<u8>,
        #[arg(long)]
        age_to: Option<u8>,
        /// Prefecture code, 01–47.
        #[arg(long)]
        prefecture: Option<String>,
        /// Only first certifications (新規).
        #[arg(long)]
        new_only: bool,
    },
}

async fn act(
    v: &Visiting,
    user: &str,
    c: &FeasibilityCommand,
) -> anyhow::Result<Result<serde_json::Value, SandboxError>> {
    let FeasibilityCommand::Count {
        disease,
        year,
        severity_from,
        severity_to,
        age_from,
        age_to,
        prefecture,
        new_only,
    } = c;
    let request = CountRequest {
        disease_no: *disease,
        fiscal_year: *year,
        severity_from: *severity_from,
        severity_to: *severity_to,
        age_from: *age_from,
        age_to: *age_to,
        prefecture: prefecture.clone(),
        new_only: *new_only,
    };
    Ok(v.feasibility_count(user, &request)
        .await
        .map(|a| serde_json::to_value(&a).unwrap_or_default()))
}

pub fn feasibility(ctx: &Context, env: &EnvArgs, a: &FeasibilityArgs) -> anyhow::Result<ExitCode> {
    signed_in(ctx, env, &a.who, async |v, user| {
        act(v, user, &a.command).await
    })
}
