//! `--engine ballista-standalone`: a Ballista scheduler and executors in this process, on
//! loopback, on a Tokio runtime of their own (Ballista's servers are spawned tasks; they end
//! when this runtime does, with the engine).

use std::sync::Arc;
use std::time::Duration;

use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;

use crate::codec::Codecs;

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

/// The runtime that carries the scheduler and executors, and the scheduler's address.
#[derive(Debug)]
pub(crate) struct Standalone {
    runtime: Option<tokio::runtime::Runtime>,
    port: u16,
}

fn config_error(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Configuration(format!("starting Ballista: {e}"))
}

/// The state Ballista's scheduler plans with and executors run with: niji's codecs, and for
/// an executor a memory pool of `memory_mb` whose overflow spills (a scheduler only plans).
pub(crate) fn cluster_state(memory_mb: Option<usize>) -> Result<SessionState> {
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(mb) = memory_mb {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(mb << 20)));
    }
    Ok(SessionStateBuilder::new()
        .with_default_features()
        .with_config(Codecs::get().on(SessionConfig::new_with_ballista()))
        .with_runtime_env(runtime.build_arc()?)
        .build())
}

/// A client of the scheduler at `url`, once it answers.
pub(crate) async fn scheduler_client(
    url: &str,
) -> Result<SchedulerGrpcClient<tonic::transport::Channel>> {
    let mut waited = Duration::ZERO;
    loop {
        match SchedulerGrpcClient::connect(url.to_string()).await {
            Ok(client) => return Ok(client),
            Err(e) if waited > Duration::from_secs(30) => return Err(config_error(e)),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                waited += Duration::from_millis(100);
            }
        }
    }
}

impl Standalone {
    pub(crate) async fn start(size: StandaloneSize) -> Result<Self> {
        let StandaloneSize {
            executors,
            cores,
            memory_mb,
        } = size;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("niji-ballista")
            .enable_all()
            .build()
            .map_err(config_error)?;
        let started = runtime.spawn(async move {
            let state = cluster_state(Some(memory_mb))?;
            let scheduler =
                ballista_scheduler::standalone::new_standalone_scheduler_from_state(&state)
                    .await
                    .map_err(config_error)?;
            let url = format!("http://localhost:{}", scheduler.port());
            for _ in 0..executors.max(1) {
                let client = scheduler_client(&url).await?;
                ballista_executor::new_standalone_executor_from_state(client, cores.max(1), &state)
                    .await
                    .map_err(config_error)?;
            }
            Ok::<_, DataFusionError>(scheduler.port())
        });
        let port = started.await.map_err(config_error)??;
        tracing::info!(
            port,
            executors,
            cores,
            memory_mb,
            "Ballista standalone started"
        );
        Ok(Self {
            runtime: Some(runtime),
            port,
        })
    }

    pub(crate) fn scheduler_url(&self) -> String {
        format!("http://localhost:{}", self.port)
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        // Dropped from async code, a runtime must not block on its tasks.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
