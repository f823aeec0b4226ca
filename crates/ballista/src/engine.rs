//! [`BallistaEngine`]: checked plans run on a Ballista cluster. The client side is the same
//! as DataFusion's in this process up to the optimised logical plan (the guard, the shadow
//! rewrite and total expressions have all acted on it); Ballista's planner then sends it to
//! the scheduler, and the result streams back from the executors to the same chokepoint,
//! which judges it as it judges any other.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::SessionStateExt;
use ballista_core::serde::protobuf::CancelJobParams;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::Stream;
use niji_sandbox::engine::execute_until_stopped;
use niji_sandbox::{Engine, LocalEngine, StopFlag};
use tracing::Instrument;

use crate::codec::Codecs;
use crate::standalone::{Standalone, StandaloneSize};

/// Where checked plans run: a Ballista scheduler, remote or started in this process.
#[derive(Debug)]
pub struct BallistaEngine {
    /// `http://host:port` of the scheduler's gRPC service.
    scheduler: String,
    /// The scheduler and executors of `ballista-standalone`, kept for as long as the engine.
    _standalone: Option<Standalone>,
    /// Plans sent to the cluster (information_schema alone is answered here).
    plans_sent: AtomicU64,
}

impl BallistaEngine {
    /// A cluster whose scheduler listens at `ballista://host:port` (or `df://host:port`).
    pub fn remote(url: &str) -> Result<Self> {
        let address = url
            .strip_prefix("ballista://")
            .or_else(|| url.strip_prefix("df://"))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| {
                DataFusionError::Configuration(format!(
                    "{url}: a Ballista scheduler is given as ballista://host:port"
                ))
            })?;
        Ok(Self::at(format!("http://{address}"), None))
    }

    /// A scheduler and executors of `size` in this process, on loopback.
    pub async fn standalone(size: StandaloneSize) -> Result<Self> {
        let standalone = Standalone::start(size).await?;
        Ok(Self::at(standalone.scheduler_url(), Some(standalone)))
    }

    fn at(scheduler: String, standalone: Option<Standalone>) -> Self {
        Self {
            scheduler,
            _standalone: standalone,
            plans_sent: AtomicU64::new(0),
        }
    }

    /// How many plans were sent to the cluster.
    pub fn plans_sent(&self) -> u64 {
        self.plans_sent.load(Ordering::Relaxed)
    }
}

/// The engine `name` gives: `datafusion` (in this process), `ballista-standalone` (a
/// scheduler and executors of `size` in this process) or `ballista://host:port`.
pub async fn engine_named(name: &str, size: StandaloneSize) -> Result<Arc<dyn Engine>> {
    Ok(match name {
        "datafusion" => Arc::new(LocalEngine),
        "ballista-standalone" => Arc::new(BallistaEngine::standalone(size).await?),
        url => Arc::new(BallistaEngine::remote(url)?),
    })
}

#[async_trait]
impl Engine for BallistaEngine {
    fn name(&self) -> &'static str {
        "ballista"
    }

    async fn execute(
        &self,
        state: &SessionState,
        plan: LogicalPlan,
        stop: &StopFlag,
    ) -> Result<SendableRecordBatchStream> {
        // The query's own state (its settings, analyzer rules and memory pool) with Ballista's
        // planner: optimised here, planned and run by the cluster.
        let state = SessionStateBuilder::new_from_existing(state.clone())
            .with_config(Codecs::get().on(state.config().clone()))
            .build()
            .upgrade_for_ballista(self.scheduler.clone())?;
        let physical = state.create_physical_plan(&plan).await?;
        let stream = execute_until_stopped(physical.clone(), &state, stop)?;
        // information_schema alone is answered here, with no job to cancel.
        let Some(job) = distributed(&physical) else {
            return Ok(stream);
        };
        self.plans_sent.fetch_add(1, Ordering::Relaxed);
        let alive = Arc::new(());
        tokio::spawn(
            cancel_when_stopped(
                self.scheduler.clone(),
                job,
                stop.clone(),
                Arc::downgrade(&alive),
            )
            .in_current_span(),
        );
        Ok(Box::pin(Guarded {
            input: stream,
            _alive: alive,
        }))
    }
}

/// The node of `plan` that submits it to the cluster, if it is sent there.
fn distributed(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let mut found = None;
    let _ = plan.apply(|node| {
        let any: &dyn std::any::Any = node.as_ref();
        if any.is::<DistributedQueryExec<LogicalPlanNode>>() {
            found = Some(Arc::clone(node));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// A stop ends the stream here at once; this also cancels the job on the cluster, so that no
/// further task of it is scheduled. It ends when the stream is dropped.
async fn cancel_when_stopped(
    scheduler: String,
    node: Arc<dyn ExecutionPlan>,
    stop: StopFlag,
    alive: Weak<()>,
) {
    while alive.strong_count() > 0 {
        if stop.is_stopped() {
            let any: &dyn std::any::Any = node.as_ref();
            // The job has an id once it was submitted, at the stream's first poll.
            let Some(job) = any
                .downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()
                .and_then(|exec| exec.job_id())
                .map(|id| id.to_string())
            else {
                return;
            };
            let cancelled = async {
                let mut client = SchedulerGrpcClient::connect(scheduler.clone()).await?;
                client
                    .cancel_job(CancelJobParams {
                        job_id: job.clone(),
                    })
                    .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            };
            match cancelled.await {
                Ok(()) => tracing::info!(%job, "cancelled a stopped query's Ballista job"),
                Err(e) => {
                    tracing::warn!(%job, error = %e, "a stopped query's Ballista job was not cancelled")
                }
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The result stream, with the token whose drop tells [`cancel_when_stopped`] to end.
struct Guarded {
    input: SendableRecordBatchStream,
    _alive: Arc<()>,
}

impl Stream for Guarded {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.input.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for Guarded {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}
