//! The threads one plan runs on: a runtime started for it and shut down after it.
//!
//! A plan's operators are tasks that yield only between batches, and one fed from memory (a
//! cross join) may not yield for as long as it runs: on a runtime shared by all queries it
//! would hold the workers every other query waits for. With threads of its own, the operating
//! system shares the cores between running plans; and a plan still running after
//! `demote_after_ms` has its threads lowered in priority, so that the short queries of other
//! projects take the cores first and answer in about their usual time beside a runaway one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustix::process::{Pid, setpriority_process};

use crate::SandboxError;

/// The nice value of a demoted plan's threads: under Linux's scheduler a thread at 0 weighs
/// about ten times one at 10, so a runaway keeps about a tenth of a core others want.
pub const DEMOTED_NICE: i32 = 10;

/// The threads of one running plan.
#[derive(Debug)]
pub(crate) struct PlanThreads {
    handle: tokio::runtime::Handle,
    /// Taken only when dropped.
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Threads alive now.
    threads: Mutex<Vec<Pid>>,
    demoted: AtomicBool,
}

impl Shared {
    fn threads(&self) -> std::sync::MutexGuard<'_, Vec<Pid>> {
        // A poisoned list is still a list of thread ids.
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn lower(thread: Pid) {
    if let Err(e) = setpriority_process(Some(thread), DEMOTED_NICE) {
        // Gone already (it ended between the list and here), or not permitted.
        tracing::debug!(thread = thread.as_raw_nonzero().get(), error = %e, "thread not demoted");
    }
}

impl PlanThreads {
    /// Starts `workers` threads (and up to as many more for blocking file reads).
    pub(crate) fn start(workers: usize) -> Result<Self, SandboxError> {
        let shared = Arc::new(Shared::default());
        let (on_start, on_stop) = (shared.clone(), shared.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .max_blocking_threads(workers.max(1))
            .thread_name("niji-query")
            .on_thread_start(move || {
                let me = rustix::thread::gettid();
                let mut threads = on_start.threads();
                threads.push(me);
                // Under the list's lock: a demotion either sees this thread or was flagged
                // before it.
                if on_start.demoted.load(Ordering::SeqCst) {
                    lower(me);
                }
            })
            .on_thread_stop(move || {
                let me = rustix::thread::gettid();
                on_stop.threads().retain(|t| *t != me);
            })
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            shared,
        })
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Lowers the priority of every thread of the plan, now and later started.
    pub(crate) fn demote(&self) {
        self.shared.demoted.store(true, Ordering::SeqCst);
        for &thread in self.shared.threads().iter() {
            lower(thread);
        }
    }

    pub(crate) fn is_demoted(&self) -> bool {
        self.shared.demoted.load(Ordering::SeqCst)
    }

    /// The plan's threads alive now (Linux thread ids).
    pub(crate) fn thread_ids(&self) -> Vec<i32> {
        self.shared
            .threads()
            .iter()
            .map(|t| t.as_raw_nonzero().get())
            .collect()
    }
}

impl Drop for PlanThreads {
    /// Shut down without waiting: a runtime may not be dropped, waiting, inside another, and
    /// an operator that was stopped ends at its next batch.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A plan running now, as custodians and tests see it.
#[derive(Debug, Clone)]
pub struct RunningPlan {
    /// The project (or dataset or feasibility scope) whose plan it is.
    pub scope: String,
    pub started: Instant,
    pub demoted: bool,
    /// Its threads' Linux thread ids.
    pub threads: Vec<i32>,
}

/// The plans running now, by a number of their own.
#[derive(Debug, Default)]
pub(crate) struct Running {
    next: std::sync::atomic::AtomicU64,
    plans: Mutex<std::collections::BTreeMap<u64, Listed>>,
}

#[derive(Debug)]
struct Listed {
    scope: String,
    started: Instant,
    threads: Arc<PlanThreads>,
}

impl Running {
    /// Lists `threads` as running `scope`'s plan until the returned guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>, scope: &str, threads: Arc<PlanThreads>) -> RunningGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id,
            Listed {
                scope: scope.to_string(),
                started: Instant::now(),
                threads,
            },
        );
        RunningGuard {
            running: self.clone(),
            id,
        }
    }

    pub(crate) fn list(&self) -> Vec<RunningPlan> {
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|p| RunningPlan {
                scope: p.scope.clone(),
                started: p.started,
                demoted: p.threads.is_demoted(),
                threads: p.threads.thread_ids(),
            })
            .collect()
    }
}

pub(crate) struct RunningGuard {
    running: Arc<Running>,
    id: u64,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.running
            .plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}
