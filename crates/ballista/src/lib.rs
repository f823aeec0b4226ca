//! niji on Ballista, DataFusion's distributed engine: an [`niji_sandbox::Engine`] that sends
//! checked plans to a Ballista scheduler (remote, or started in this process), the codecs that
//! carry niji's views and functions there, and the scheduler and executor processes of a niji
//! cluster. The guard, lineage, disclosure checks, limits and audit stay in the chokepoint,
//! which acts on the plan before and the result after, whichever engine runs it.

mod cluster;
mod codec;
mod engine;
mod standalone;

pub use cluster::{run_executor, run_scheduler};
pub use codec::{NijiLogicalCodec, NijiPhysicalCodec};
pub use engine::BallistaEngine;

use std::sync::Arc;

use niji_sandbox::{Engine, LocalEngine};

/// The size of a `ballista-standalone` cluster.
#[derive(Debug, Clone, Copy)]
pub struct StandaloneSize {
    pub executors: usize,
    /// Task slots per executor.
    pub cores: usize,
    /// Memory per executor, in MiB; beyond it, operators spill.
    pub memory_mb: usize,
}

impl Default for StandaloneSize {
    fn default() -> Self {
        Self {
            executors: 2,
            cores: 2,
            memory_mb: 2048,
        }
    }
}

/// The engine `name` gives: `datafusion` (in this process), `ballista-standalone` (a
/// scheduler and executors of `size` in this process) or `ballista://host:port`.
pub async fn engine_named(
    name: &str,
    size: StandaloneSize,
) -> datafusion::error::Result<Arc<dyn Engine>> {
    Ok(match name {
        "datafusion" => Arc::new(LocalEngine),
        "ballista-standalone" => {
            Arc::new(BallistaEngine::standalone(size.executors, size.cores, size.memory_mb).await?)
        }
        url => Arc::new(BallistaEngine::remote(url)?),
    })
}
