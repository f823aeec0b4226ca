//! `niji consent …`: a custodian records consent withdrawals (難病DB, 小慢DB) and lists them.
//! The registration is read from a file or stdin, never from arguments: a name and a birth date
//! on the command line would stay in the shell's history and the process list.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use niji_pseudo::Registration;
use serde::Deserialize;

use crate::context::{Context, EnvArgs, custodian_actor, print_answer};
use crate::visiting::{open, runtime};

#[derive(Debug, Args)]
pub struct ConsentArgs {
    #[command(subcommand)]
    command: ConsentCommand,
}

#[derive(Debug, Subcommand)]
enum ConsentCommand {
    /// Record that a registration withdrew consent: from the next query on, its person is in
    /// no project's views and no new release.
    Withdraw {
        /// The consent-based database of the registration: nanbyo or shoman.
        #[arg(long)]
        database: String,
        /// TOML with `kana_name`, `sex`, `birth_date` and `consent_no` as the person
        /// registered them; `-` reads stdin.
        #[arg(long)]
        registration: PathBuf,
        /// Record it even though no stored row matches (its delivery has not come yet).
        #[arg(long)]
        not_yet_delivered: bool,
    },
    /// The withdrawals recorded.
    List,
}

/// A registration as the custodian gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrationFile {
    kana_name: String,
    sex: String,
    birth_date: String,
    consent_no: String,
}

fn read_registration(path: &PathBuf) -> anyhow::Result<Registration> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    // The parser's message quotes the line it failed on: say where, not what.
    let file: RegistrationFile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the registration is not TOML with kana_name, sex, birth_date and consent_no (at {:?})",
            e.span()
        )
    })?;
    Ok(Registration::parse(
        &file.kana_name,
        &file.sex,
        &file.birth_date,
        &file.consent_no,
    )?)
}

pub fn consent(ctx: &Context, env: &EnvArgs, args: &ConsentArgs) -> anyhow::Result<ExitCode> {
    let actor = custodian_actor();
    runtime()?.block_on(async {
        let v = open(ctx, env).await?;
        let answer = match &args.command {
            ConsentCommand::Withdraw {
                database,
                registration,
                not_yet_delivered,
            } => {
                let registration = read_registration(registration)?;
                v.withdraw_consent(&actor, database, &registration, *not_yet_delivered)
                    .await
                    .map(|r| serde_json::to_value(r).unwrap_or_default())
            }
            ConsentCommand::List => v
                .platform()
                .list_withdrawals(&actor)
                .await
                .map(|w| serde_json::to_value(w).unwrap_or_default())
                .map_err(Into::into),
        };
        print_answer(answer)
    })
}
