//! `--engine ballista-standalone`: a Ballista scheduler and executors in this process, on
//! loopback, on a Tokio runtime of their own (Ballista's servers are spawned tasks; they end
//! when this runtime does, with the engine).

use std::sync::Arc;
use std::time::Duration;

use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;

use crate::BallistaEngine;

/// The runtime that carries the scheduler and executors, and the scheduler's address.
#[derive(Debug)]
pub(crate) struct Standalone {
    runtime: Option<tokio::runtime::Runtime>,
    port: u16,
}

fn config_error(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Configuration(format!("starting Ballista: {e}"))
}

/// The state Ballista's scheduler plans with and executors run with: niji's codecs, and a
/// memory pool of `memory_mb` (per executor) whose overflow spills.
pub(crate) fn cluster_state(memory_mb: usize) -> Result<SessionState> {
    let config = BallistaEngine::session_config(SessionConfig::new_with_ballista());
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_mb << 20)))
        .build_arc()?;
    Ok(SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
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
    pub(crate) async fn start(executors: usize, cores: usize, memory_mb: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("niji-ballista")
            .enable_all()
            .build()
            .map_err(config_error)?;
        let started = runtime.spawn(async move {
            let state = cluster_state(memory_mb)?;
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

/// The codecs of a process of a niji cluster.
pub(crate) fn codec() -> BallistaCodec {
    BallistaCodec::new(
        Arc::new(crate::codec::NijiLogicalCodec::default()),
        Arc::new(crate::codec::NijiPhysicalCodec::default()),
    )
}
