//! The processes of a niji Ballista cluster (`niji ballista scheduler`, `niji ballista
//! executor`): Ballista's scheduler and executor with niji's codecs, so that the plans a niji
//! server sends can be decoded and run. Executors read the store's Parquet files at the paths
//! the plans name, so every executor must see the store at the same path (one machine, or
//! shared storage mounted alike).

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use crate::codec::{NijiLogicalCodec, NijiPhysicalCodec};
use crate::standalone::{cluster_state, codec, scheduler_client};

fn failed(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("{what}: {e}"))
}

/// Runs a scheduler on `bind` until the process ends. Executors that stop answering for
/// `executor_timeout_s` seconds are taken as lost: their tasks run again elsewhere.
pub async fn run_scheduler(bind: SocketAddr, executor_timeout_s: u64) -> Result<()> {
    let state = cluster_state(1024)?;
    let config = {
        let mut c = SchedulerConfig {
            bind_host: bind.ip().to_string(),
            bind_port: bind.port(),
            external_host: bind.ip().to_string(),
            // niji's executors ask for work (as standalone ones do).
            scheduling_policy: TaskSchedulingPolicy::PullStaged,
            executor_timeout_seconds: executor_timeout_s,
            expire_dead_executor_interval_seconds: executor_timeout_s.clamp(1, 15),
            ..Default::default()
        };
        let config = state.config().clone();
        c.override_config_producer = Some(Arc::new(move || config.clone()));
        let planning = state.clone();
        c.override_session_builder = Some(Arc::new(move |_| Ok(planning.clone())));
        c.override_logical_codec = Some(Arc::new(NijiLogicalCodec::default()));
        c.override_physical_codec = Some(Arc::new(NijiPhysicalCodec::default()));
        Arc::new(c)
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| failed("the scheduler's cluster state", e))?;
    let scheduler = ballista_scheduler::scheduler_process::create_scheduler::<
        LogicalPlanNode,
        PhysicalPlanNode,
    >(cluster, config)
    .await
    .map_err(|e| failed("the scheduler", e))?;
    tracing::info!(%bind, "Ballista scheduler listening");
    ballista_scheduler::scheduler_process::start_grpc_service(bind, scheduler)
        .await
        .map_err(|e| failed("the scheduler's service", e))
}

/// Runs an executor of `cores` task slots and `memory_mb` of memory for the scheduler at
/// `scheduler` (host:port) until the process ends.
pub async fn run_executor(scheduler: &str, cores: usize, memory_mb: usize) -> Result<()> {
    let state: SessionState = cluster_state(memory_mb)?;
    let client = scheduler_client(&format!("http://{scheduler}")).await?;
    let config = state.config().clone();
    let config_producer: ConfigProducer = Arc::new(move || config.clone());
    let runtime = state.runtime_env().clone();
    let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
    ballista_executor::new_standalone_executor_from_builder(
        client,
        cores.max(1),
        config_producer,
        runtime_producer,
        codec(),
        BallistaFunctionRegistry::from(&state),
    )
    .await
    .map_err(|e| failed("the executor", e))?;
    tracing::info!(
        scheduler,
        cores,
        memory_mb,
        "Ballista executor polling for work"
    );
    // The executor's loop and Flight service are tasks of this runtime.
    std::future::pending::<()>().await;
    Ok(())
}
