//! The engine `niji serve` runs checked plans on, and `niji ballista …`: the scheduler and
//! executor processes of a niji Ballista cluster (docs/ballista.md; scripts/ballista-cluster.sh
//! starts one on this machine).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use niji_ballista::StandaloneSize;
use niji_sandbox::Engine;

/// Which engine runs checked plans.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// `datafusion` (in this process), `ballista-standalone` (a Ballista scheduler and
    /// executors in this process, on loopback) or `ballista://host:port` (a cluster's
    /// scheduler).
    #[arg(long, env = "NIJI_ENGINE", default_value = "datafusion")]
    pub engine: String,
    /// Executors of `ballista-standalone`.
    #[arg(long, default_value_t = StandaloneSize::default().executors)]
    pub ballista_executors: usize,
    /// Task slots per executor of `ballista-standalone`.
    #[arg(long, default_value_t = StandaloneSize::default().cores)]
    pub ballista_cores: usize,
    /// Memory per executor of `ballista-standalone`, in MiB; beyond it, operators spill.
    #[arg(long, default_value_t = StandaloneSize::default().memory_mb)]
    pub ballista_memory_mb: usize,
}

impl EngineArgs {
    pub async fn engine(&self) -> anyhow::Result<Arc<dyn Engine>> {
        let size = StandaloneSize {
            executors: self.ballista_executors,
            cores: self.ballista_cores,
            memory_mb: self.ballista_memory_mb,
        };
        niji_ballista::engine_named(&self.engine, size)
            .await
            .with_context(|| format!("the engine {}", self.engine))
    }
}

#[derive(Debug, Args)]
pub struct BallistaArgs {
    #[command(subcommand)]
    command: BallistaCommand,
}

#[derive(Debug, Subcommand)]
enum BallistaCommand {
    /// A scheduler, with niji's codecs.
    Scheduler {
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: SocketAddr,
        /// Seconds without a word from an executor before its tasks run elsewhere (at least 15:
        /// busy executors report every 5 s).
        #[arg(long, default_value_t = 30)]
        executor_timeout_s: u64,
    },
    /// An executor for the scheduler at `--scheduler`, with niji's codecs; it must see the
    /// store at the same path as the niji server.
    Executor {
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: String,
        #[arg(long, default_value_t = StandaloneSize::default().cores)]
        cores: usize,
        #[arg(long, default_value_t = StandaloneSize::default().memory_mb)]
        memory_mb: usize,
    },
}

pub fn ballista(a: &BallistaArgs) -> anyhow::Result<()> {
    crate::visiting::runtime()?.block_on(async {
        match &a.command {
            BallistaCommand::Scheduler {
                bind,
                executor_timeout_s,
            } => niji_ballista::run_scheduler(*bind, *executor_timeout_s).await?,
            BallistaCommand::Executor {
                scheduler,
                cores,
                memory_mb,
            } => niji_ballista::run_executor(scheduler, *cores, *memory_mb).await?,
        }
        Ok(())
    })
}
