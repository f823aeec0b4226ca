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

use crate::codec::Codecs;
use crate::standalone::{cluster_state, scheduler_client};

fn failed(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("{what}: {e}"))
}

/// How often a busy executor asks for work, which is its only heartbeat: Ballista 55's
/// executors poll at least every 5 s even while every task slot is taken.
const BUSY_EXECUTOR_POLL_S: u64 = 5;

/// The shortest executor timeout a scheduler accepts: three missed heartbeats. A shorter one
/// takes busy, healthy executors as lost under load and resets their tasks over and over.
pub const MIN_EXECUTOR_TIMEOUT_S: u64 = 3 * BUSY_EXECUTOR_POLL_S;

/// Runs a scheduler on `bind` until the process ends. Executors that stop answering for
/// `executor_timeout_s` seconds (at least [`MIN_EXECUTOR_TIMEOUT_S`]) are taken as lost.
pub async fn run_scheduler(bind: SocketAddr, executor_timeout_s: u64) -> Result<()> {
    if executor_timeout_s < MIN_EXECUTOR_TIMEOUT_S {
        return Err(DataFusionError::Configuration(format!(
            "an executor timeout of {executor_timeout_s} s is too short: busy executors \
             report only every {BUSY_EXECUTOR_POLL_S} s, so it must be at least \
             {MIN_EXECUTOR_TIMEOUT_S} s"
        )));
    }
    let state = cluster_state(None)?;
    let config = {
        let mut c = SchedulerConfig {
            bind_host: bind.ip().to_string(),
            bind_port: bind.port(),
            external_host: bind.ip().to_string(),
            // niji's executors ask for work (as standalone ones do).
            scheduling_policy: TaskSchedulingPolicy::PullStaged,
            executor_timeout_seconds: executor_timeout_s,
            // Checked a few times per timeout, so a lost executor is found soon after it.
            expire_dead_executor_interval_seconds: (executor_timeout_s / 3).clamp(1, 15),
            ..Default::default()
        };
        let config = state.config().clone();
        c.override_config_producer = Some(Arc::new(move || config.clone()));
        let planning = state.clone();
        c.override_session_builder = Some(Arc::new(move |_| Ok(planning.clone())));
        c.override_logical_codec = Some(Codecs::get().logical());
        c.override_physical_codec = Some(Codecs::get().physical());
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
    let state: SessionState = cluster_state(Some(memory_mb))?;
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
        Codecs::get().ballista(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_timeout_shorter_than_three_busy_heartbeats_is_refused() {
        // Port 0 and a time limit: were the check gone, the scheduler would start and serve,
        // and the test must then fail, not hang.
        let bind: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            run_scheduler(bind, MIN_EXECUTOR_TIMEOUT_S - 1),
        )
        .await
        .expect("refused at once, not served")
        .expect_err("a timeout busy executors cannot meet");
        assert!(refused.to_string().contains("at least 15 s"), "{refused}");
    }
}
