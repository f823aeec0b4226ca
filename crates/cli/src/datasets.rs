//! `niji dataset …`: standard datasets. A custodian builds them (once per data version),
//! approves organisations and opens datasets to them; an analyst requests one on the short
//! form; a committee member signs the request off; the analyst downloads the file. Signed in
//! with the user's token.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use niji_governance::DatasetRequestForm;
use niji_sandbox::{DatasetFormat, SandboxError, Visiting};

use crate::applications::{SignIn, signed_in};
use crate::context::{Context, EnvArgs};

#[derive(Debug, Args)]
pub struct DatasetArgs {
    #[command(flatten)]
    who: SignIn,
    #[command(subcommand)]
    command: DatasetCommand,
}

#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// The definitions, with their items and the versions built.
    List,
    /// Build a dataset at the current data version (custodians); a version built before is
    /// not built again.
    Build { name: String },
    /// Open a dataset to every approved organisation: their requests need no sign-off.
    Open { name: String },
    /// Approve an organisation to request standard datasets (custodians).
    ApproveOrganisation { organisation: String },
    /// Request a dataset on the short form (purpose, public interest, pledge).
    Request {
        #[arg(long)]
        dataset: String,
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        public_interest: String,
        /// I will not try to identify anyone, link the data with other data, or pass it on.
        #[arg(long)]
        pledge: bool,
    },
    /// Requests: one's own, or all for those who sign off.
    Requests,
    /// Sign off a request (a committee member from another organisation).
    Grant {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Refuse a request, saying why.
    Refuse {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Download a dataset one's granted request covers, at the current data version.
    Download {
        name: String,
        #[arg(long, default_value = "csv", value_parser = ["csv", "parquet"])]
        format: String,
        /// Where to write the file.
        #[arg(long)]
        out: PathBuf,
    },
}

fn json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

async fn act(
    v: &Visiting,
    user: &str,
    c: &DatasetCommand,
) -> anyhow::Result<Result<serde_json::Value, SandboxError>> {
    let p = v.platform();
    Ok(match c {
        DatasetCommand::List => {
            let mut out = Vec::new();
            for (name, d) in &v.standard_datasets().datasets {
                let versions = p.dataset_versions(name).await?;
                out.push(serde_json::json!({
                    "name": name,
                    "title_ja": d.dataset.title_ja,
                    "title_en": d.dataset.title_en,
                    "items": d.dataset.items().into_iter().map(|i| i.name).collect::<Vec<_>>(),
                    "record_level": d.dataset.is_record_level(),
                    "open": p.dataset_is_open(name).await?,
                    "versions": versions,
                }));
            }
            Ok(serde_json::Value::Array(out))
        }
        DatasetCommand::Build { name } => match v.build_dataset(user, name).await {
            Ok(built) => {
                let mut out = json(&built);
                if let Some(report) = v.extract_report(name).await? {
                    out["anonymisation"] = json(&report);
                }
                Ok(out)
            }
            Err(e) => Err(e),
        },
        DatasetCommand::Open { name } => v
            .open_dataset(user, name)
            .await
            .map(|()| serde_json::json!({ "opened": name })),
        DatasetCommand::ApproveOrganisation { organisation } => p
            .approve_dataset_organisation(user, organisation)
            .await
            .map(|()| serde_json::json!({ "approved": organisation }))
            .map_err(Into::into),
        DatasetCommand::Request {
            dataset,
            purpose,
            public_interest,
            pledge,
        } => {
            let form = DatasetRequestForm {
                dataset: dataset.clone(),
                purpose: purpose.clone(),
                public_interest: public_interest.clone(),
                pledge: *pledge,
            };
            p.request_dataset(user, &form, v.offered(dataset))
                .await
                .map(|r| json(&r))
                .map_err(Into::into)
        }
        DatasetCommand::Requests => p
            .dataset_requests(user)
            .await
            .map(|r| json(&r))
            .map_err(Into::into),
        DatasetCommand::Grant { id, reason } => p
            .sign_off_dataset_request(user, id, true, reason)
            .await
            .map(|r| json(&r))
            .map_err(Into::into),
        DatasetCommand::Refuse { id, reason } => p
            .sign_off_dataset_request(user, id, false, reason)
            .await
            .map(|r| json(&r))
            .map_err(Into::into),
        DatasetCommand::Download { name, format, out } => {
            let format = DatasetFormat::parse(format).context("format is csv or parquet")?;
            match v.deliver_dataset(user, name, format).await {
                Ok(d) => {
                    std::fs::write(out, &d.bytes)
                        .with_context(|| format!("writing {}", out.display()))?;
                    Ok(serde_json::json!({
                        "dataset": name, "version": d.version.version, "request": d.request,
                        "format": d.format, "bytes": d.bytes.len(), "sha256": d.sha256,
                        "file": out,
                    }))
                }
                Err(e) => Err(e),
            }
        }
    })
}

pub fn dataset(ctx: &Context, env: &EnvArgs, a: &DatasetArgs) -> anyhow::Result<ExitCode> {
    signed_in(ctx, env, &a.who, async |v, user| {
        act(v, user, &a.command).await
    })
}
