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
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::serde::protobuf::CancelJobParams;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::Stream;
use niji_sandbox::engine::interruptible;
use niji_sandbox::{Engine, StopFlag};
use tracing::Instrument;

use crate::codec::{NijiLogicalCodec, NijiPhysicalCodec};
use crate::standalone::Standalone;

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
        let rest = url
            .strip_prefix("ballista://")
            .or_else(|| url.strip_prefix("df://"))
            .ok_or_else(|| {
                DataFusionError::Configuration(format!(
                    "{url}: a Ballista scheduler is given as ballista://host:port"
                ))
            })?;
        if rest.is_empty() || rest.contains('/') {
            return Err(DataFusionError::Configuration(format!(
                "{url}: a Ballista scheduler is given as ballista://host:port"
            )));
        }
        Ok(Self {
            scheduler: format!("http://{rest}"),
            _standalone: None,
            plans_sent: AtomicU64::new(0),
        })
    }

    /// A scheduler and `executors` executors of `cores` task slots each, in this process on
    /// loopback, with `memory_mb` of memory each (what does not fit spills).
    pub async fn standalone(executors: usize, cores: usize, memory_mb: usize) -> Result<Self> {
        let standalone = Standalone::start(executors, cores, memory_mb).await?;
        Ok(Self {
            scheduler: standalone.scheduler_url(),
            _standalone: Some(standalone),
            plans_sent: AtomicU64::new(0),
        })
    }

    /// How many plans were sent to the cluster.
    pub fn plans_sent(&self) -> u64 {
        self.plans_sent.load(Ordering::Relaxed)
    }

    /// The session settings every niji plan travels with: niji's codecs on Ballista's.
    pub fn session_config(
        config: datafusion::prelude::SessionConfig,
    ) -> datafusion::prelude::SessionConfig {
        config
            .with_ballista_logical_extension_codec(Arc::new(NijiLogicalCodec::default()))
            .with_ballista_physical_extension_codec(Arc::new(NijiPhysicalCodec::default()))
            .upgrade_for_ballista()
    }
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
        let config = Self::session_config(state.config().clone());
        let state = SessionStateBuilder::new_from_existing(state.clone())
            .with_config(config)
            .build()
            .upgrade_for_ballista(self.scheduler.clone())?;
        let physical = state.create_physical_plan(&plan).await?;
        if job_plan(&physical) {
            self.plans_sent.fetch_add(1, Ordering::Relaxed);
        }
        let stream = execute_stream(interruptible(physical.clone(), stop)?, state.task_ctx())?;
        let alive = Arc::new(());
        tokio::spawn(
            cancel_when_stopped(
                self.scheduler.clone(),
                physical,
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

/// A stop ends the stream here at once; this also cancels the job on the cluster, so that no
/// further task of it is scheduled. It ends when the stream is dropped.
async fn cancel_when_stopped(
    scheduler: String,
    plan: Arc<dyn ExecutionPlan>,
    stop: StopFlag,
    alive: Weak<()>,
) {
    while alive.strong_count() > 0 {
        if stop.is_stopped() {
            let Some(job) = job_of(&plan) else {
                return;
            };
            let cancelled = async {
                let mut client = SchedulerGrpcClient::connect(scheduler.clone()).await?;
                client
                    .cancel_job(CancelJobParams {
                        job_id: job.to_string(),
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

/// Whether `plan` runs on the cluster.
fn job_plan(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.exists(|node| {
        let any: &dyn std::any::Any = node.as_ref();
        Ok(any.is::<DistributedQueryExec<LogicalPlanNode>>())
    })
    .unwrap_or(false)
}

/// The job the cluster runs for `plan`, once it was submitted (at the first poll).
fn job_of(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let mut job = None;
    let _ = plan.apply(|node| {
        let any: &dyn std::any::Any = node.as_ref();
        if let Some(exec) = any.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>() {
            job = exec.job_id().map(|j| j.to_string());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    job
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
