//! Running a checked plan: its own memory pool, time limit and stop flag, on threads of its own
//! ([`crate::threads`]), demoted when it runs long.

use super::*;
use crate::threads::PlanThreads;

pub(crate) struct StopOnDrop(StopFlag);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl Visiting {
    /// Worker threads of one plan: its parallelism (one per core unless limited).
    fn threads_per_plan(&self) -> usize {
        match self.limits.target_partitions {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        }
    }

    /// The plans running now, with their threads.
    pub fn running_plans(&self) -> Vec<crate::RunningPlan> {
        self.running.list()
    }

    /// Runs a checked plan with the query's own memory pool and time limit, keeping at most
    /// `max_result_rows` rows (more is an error, never a silent cut).
    pub(crate) async fn execute(
        &self,
        env: &ProjectEnv,
        plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<(SchemaRef, Vec<RecordBatch>, usize), SandboxError> {
        let memory = self.limits.memory_per_query_mb << 20;
        let runtime = Arc::new(RuntimeEnv {
            memory_pool: Arc::new(FairSpillPool::new(memory)),
            disk_manager: self.runtime.disk_manager.clone(),
            cache_manager: self.runtime.cache_manager.clone(),
            object_store_registry: self.runtime.object_store_registry.clone(),
        });
        let state = SessionStateBuilder::new_from_existing(env.ctx.state())
            .with_runtime_env(runtime)
            .build();
        let max_rows = self.limits.max_result_rows;
        let engine = self.engine.clone();
        // The plan runs in a task of its own, so that the caller answers at the time limit even
        // while an operator is busy; the stop flag ends every operator at its next batch, also
        // when the caller goes away before the end.
        let stop = StopOnDrop(StopFlag::default());
        let flag = stop.0.clone();
        let limit = Duration::from_secs(self.limits.timeout_seconds);
        let threads = Arc::new(PlanThreads::start(self.threads_per_plan())?);
        let _listed = self.running.enter(&env.spec.id, threads.clone());
        let mut task = threads.handle().spawn(async move {
            let mut stream = engine.execute(&state, plan, &flag).await?;
            let schema = stream.schema();
            let mut batches = Vec::new();
            let mut rows = 0usize;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                if rows > max_rows {
                    return Err(SandboxError::Limit(format!(
                        "the result has more than {max_rows} rows; aggregate further or keep it in the workspace"
                    )));
                }
                batches.push(batch);
            }
            Ok((schema, batches, rows))
        });
        let finished = tokio::time::timeout(limit, &mut task);
        tokio::pin!(finished);
        let demote_after = Duration::from_millis(self.limits.demote_after_ms);
        let finished = tokio::select! {
            done = &mut finished => done,
            () = tokio::time::sleep(demote_after) => {
                threads.demote();
                tracing::info!(scope = %env.spec.id, "a long-running plan demoted");
                finished.await
            }
        };
        match finished {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(SandboxError::Unavailable(format!("query task ended: {e}"))),
            Err(_) => {
                stop.0.stop();
                task.abort();
                Err(SandboxError::TimeLimit(format!(
                    "the query ran longer than its {} s limit",
                    self.limits.timeout_seconds
                )))
            }
        }
    }
}
