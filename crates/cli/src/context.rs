//! What every command is given: where the store, the key, the catalog, the policies and the
//! limits are, and how the audit log names the custodian at this shell.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use niji_audit::AuditLog;
use niji_catalog::Catalog;
use niji_pseudo::CustodianKey;

#[derive(Debug)]
pub struct Context {
    /// `None`: the SQLite file in the data directory.
    pub database: Option<niji_audit::DatabaseUrl>,
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    pub catalog: PathBuf,
}

/// How the audit log names whoever runs custodian commands at this shell.
pub fn custodian_actor() -> String {
    format!(
        "{}{}",
        niji_governance::SHELL_ACTOR_PREFIX,
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

impl Context {
    /// The audit log in the platform database, its head anchored beside the key
    /// (outside the data directory, so whoever can rewrite the database cannot move the anchor).
    pub fn audit(&self, key: &CustodianKey) -> anyhow::Result<(tokio::runtime::Runtime, AuditLog)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::fs::create_dir_all(&self.data_dir)?;
        let anchor = self.key_file.with_file_name("audit.anchor");
        // Through the platform service, which runs every migration of the platform database.
        let log = rt.block_on(niji_governance::Platform::audit_log(
            &self.database(),
            &anchor,
            key,
        ))?;
        Ok((rt, log))
    }

    /// Where the platform database is.
    pub fn database(&self) -> niji_audit::DatabaseUrl {
        niji_audit::DatabaseUrl::or_in_data_dir(self.database.as_ref(), &self.data_dir)
    }

    pub fn record(
        &self,
        key: &CustodianKey,
        action: &str,
        detail: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let (rt, log) = self.audit(key)?;
        rt.block_on(log.append(&custodian_actor(), action, detail))?;
        Ok(())
    }

    pub fn catalog(&self) -> anyhow::Result<Catalog> {
        Catalog::load(&self.catalog)
            .with_context(|| format!("loading the catalog from {}", self.catalog.display()))
    }
}

/// Prints a user command's answer as JSON, or its refusal (exit code 2) or error (1) on
/// stderr with the public message only.
pub fn print_answer(
    answer: Result<serde_json::Value, niji_sandbox::SandboxError>,
) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    Ok(match answer {
        Ok(json) => {
            println!("{}", serde_json::to_string_pretty(&json)?);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {}", e.status().as_str(), e.public_message());
            match e.status() {
                niji_sandbox::Status::Refused => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    })
}

#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    /// casbin model and policy, SQL allowlist.
    #[arg(
        long,
        global = true,
        default_value = "./policies",
        env = "NIJI_POLICIES"
    )]
    pub policies: PathBuf,
    /// Limits of the Visiting environment.
    #[arg(
        long,
        global = true,
        default_value = "./sandbox/limits.toml",
        env = "NIJI_LIMITS"
    )]
    pub limits: PathBuf,
}
