//! Where checked plans run. The guard, views, limits and audit do not depend on it, so the
//! same plans can run on a distributed engine (Ballista) by adding an implementation.

use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::execute_stream;

#[async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    /// Optimises and runs a plan that has passed the guard, streaming its result.
    async fn execute(
        &self,
        state: &SessionState,
        plan: LogicalPlan,
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
    ) -> Result<SendableRecordBatchStream> {
        let physical = state.create_physical_plan(&plan).await?;
        execute_stream(physical, state.task_ctx())
    }
}
