//! Where checked plans run. The guard, views, limits and audit do not depend on it, so the
//! same plans can run on a distributed engine (Ballista) by adding an implementation.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, execute_stream,
};
use futures::Stream;

/// Raised when a query must stop: its time limit passed or its caller went away.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    /// Optimises and runs a plan that has passed the guard, streaming its result. Once `stop`
    /// is raised, every operator of the plan ends at its next batch.
    async fn execute(
        &self,
        state: &SessionState,
        plan: LogicalPlan,
        stop: &StopFlag,
    ) -> Result<SendableRecordBatchStream>;
}

/// DataFusion in this process.
#[derive(Debug, Default)]
pub struct LocalEngine;

#[async_trait]
impl Engine for LocalEngine {
    fn name(&self) -> &'static str {
        "datafusion"
    }

    async fn execute(
        &self,
        state: &SessionState,
        plan: LogicalPlan,
        stop: &StopFlag,
    ) -> Result<SendableRecordBatchStream> {
        let physical = state.create_physical_plan(&plan).await?;
        execute_until_stopped(physical, state, stop)
    }
}

/// Runs a physical plan in `state`'s task context, every operator ending at its next batch
/// once `stop` is raised: how every engine streams a plan's result.
pub fn execute_until_stopped(
    physical: Arc<dyn ExecutionPlan>,
    state: &SessionState,
    stop: &StopFlag,
) -> Result<SendableRecordBatchStream> {
    execute_stream(interruptible(physical, stop)?, state.task_ctx())
}

/// Puts a stop check between every operator and its inputs. Aborting a task only takes effect
/// when it yields to the runtime, and an operator fed from memory (a cross join, an aggregate
/// over one) may not yield for as long as it runs; it does poll its input once per batch.
fn interruptible(plan: Arc<dyn ExecutionPlan>, stop: &StopFlag) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        Ok(Transformed::new(
            Arc::new(StopCheckExec::new(node, stop.clone())) as Arc<dyn ExecutionPlan>,
            true,
            TreeNodeRecursion::Continue,
        ))
    })
    .map(|t| t.data)
}

#[derive(Debug)]
struct StopCheckExec {
    input: Arc<dyn ExecutionPlan>,
    stop: StopFlag,
}

impl StopCheckExec {
    fn new(input: Arc<dyn ExecutionPlan>, stop: StopFlag) -> Self {
        Self { input, stop }
    }
}

impl DisplayAs for StopCheckExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopCheckExec")
    }
}

impl ExecutionPlan for StopCheckExec {
    fn name(&self) -> &str {
        "StopCheckExec"
    }

    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.input.as_ref())
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "StopCheckExec has one input".into(),
            ));
        }
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.stop.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(StopCheckStream {
            input: self.input.execute(partition, context)?,
            stop: self.stop.clone(),
        }))
    }
}

struct StopCheckStream {
    input: SendableRecordBatchStream,
    stop: StopFlag,
}

impl Stream for StopCheckStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stop.is_stopped() {
            return Poll::Ready(Some(Err(DataFusionError::Execution(
                "the query was stopped".into(),
            ))));
        }
        self.input.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for StopCheckStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}
