//! The chokepoint: every query of every interface, from authorisation to its audit entry.

use super::*;

/// A query as it reaches the chokepoint.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub user: String,
    /// What the query runs for: a project, or a standard dataset's build.
    pub scope: Scope,
    pub mode: Mode,
    pub sql: String,
    /// Entry point, for the audit log (`cli`, `http`, `flight`).
    pub via: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct QueryAudit<'a> {
    pub(crate) query_id: &'a str,
    pub(crate) project: &'a str,
    pub(crate) mode: Mode,
    pub(crate) via: &'a str,
    pub(crate) engine: &'static str,
    pub(crate) sql: &'a str,
    pub(crate) plan_digest: String,
    pub(crate) tables: Vec<String>,
    pub(crate) rows: usize,
    pub(crate) result_digest: String,
    pub(crate) outcome: Status,
    pub(crate) message: String,
    pub(crate) plan_ms: u128,
    pub(crate) exec_ms: u128,
    /// Disclosure control: cells masked, the time its checks took after execution, and
    /// whether bounds on contributions left a rule unsettled, so that the exact shadow ran too
    /// (within that time).
    pub(crate) suppressed: usize,
    /// Of those, cells masked for differencing (monitoring counts them).
    pub(crate) differencing: usize,
    pub(crate) check_ms: u128,
    pub(crate) rechecked: bool,
    /// Magnitudes whose largest contributions the store's ceilings bounded (nothing summed per
    /// person for them), and aggregations whose cells were taken from the store's strata
    /// (nothing read of their rows' persons).
    pub(crate) ceiled: usize,
    pub(crate) stratified: usize,
    pub(crate) total_ms: u128,
}

pub(crate) fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl Visiting {
    /// The chokepoint. Never fails: every outcome, refusals included, is a [`QueryOutcome`]
    /// and an audit entry. If the audit entry cannot be written the outcome is an error and
    /// no rows are returned.
    pub async fn query(&self, req: &QueryRequest) -> QueryOutcome {
        let query_id = outcome::new_query_id();
        let span = tracing::info_span!("query", %query_id, scope = %req.scope, user = %req.user, mode = req.mode.as_str(), via = req.via);
        self.query_with_id(req, query_id).instrument(span).await
    }

    pub(crate) async fn query_with_id(&self, req: &QueryRequest, query_id: String) -> QueryOutcome {
        let started = Instant::now();
        let mut audit = QueryAudit {
            query_id: &query_id,
            project: req.scope.key(),
            mode: req.mode,
            via: req.via,
            engine: self.engine.name(),
            sql: &req.sql,
            plan_digest: String::new(),
            tables: Vec::new(),
            rows: 0,
            result_digest: String::new(),
            outcome: Status::Error,
            message: String::new(),
            plan_ms: 0,
            exec_ms: 0,
            suppressed: 0,
            differencing: 0,
            check_ms: 0,
            rechecked: false,
            ceiled: 0,
            stratified: 0,
            total_ms: 0,
        };
        let mut result = self.run(req, &query_id, &mut audit).await;
        match &result {
            // Only the kind: the text could carry a stored value.
            Err(SandboxError::RunFailed(cause)) => tracing::warn!(
                cause = cause.kind(),
                "query failed on real data (the cause is in the audit log)"
            ),
            Err(e) if e.status() == Status::Refused => tracing::info!(reason = %e, "query refused"),
            Err(e) => tracing::warn!(error = %e, "query failed"),
            Ok(o) => tracing::info!(rows = ?o.row_count, status = ?o.status, "query done"),
        }
        let (status, message) = match &result {
            Ok(o) => (o.status, o.message.clone()),
            Err(e) => (e.status(), e.public_message()),
        };
        audit.outcome = status;
        audit.message = message;
        audit.total_ms = ms(started.elapsed());
        if let Err(e) = self
            .platform
            .audit()
            .append(&req.user, "query", &audit)
            .await
        {
            tracing::error!(error = %e, "audit append failed; withholding the result");
            result = Err(SandboxError::Audit(e));
        }
        // Alert rules over the user's recent queries; one may suspend them before the next.
        if req.scope.watched()
            && let Err(e) = self.platform.watch(&req.user).await
        {
            tracing::error!(error = %e, "alert rules could not be evaluated");
        }
        if let Err(SandboxError::RunFailed(cause)) = &result
            && let Err(e) = self.record_failure(req, &query_id, cause, true).await
        {
            tracing::error!(error = %e, "recording a failure failed");
        }
        match result {
            Ok(mut o) => {
                o.query_id = query_id;
                o
            }
            Err(e) => QueryOutcome::failed(query_id, &e),
        }
    }

    pub(crate) async fn acquire(
        &self,
        project: &str,
    ) -> Result<
        (
            tokio::sync::OwnedSemaphorePermit,
            tokio::sync::OwnedSemaphorePermit,
        ),
        SandboxError,
    > {
        let wait = Duration::from_millis(self.limits.queue_wait_ms);
        let per = {
            let mut map = self.per_project.lock().await;
            map.entry(project.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limits.concurrent_per_project)))
                .clone()
        };
        let busy = || SandboxError::Busy("too many queries are running; try again shortly".into());
        let p = tokio::time::timeout(wait, per.acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let o = tokio::time::timeout(wait, self.overall.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        Ok((p, o))
    }

    pub(crate) async fn run(
        &self,
        req: &QueryRequest,
        query_id: &str,
        audit: &mut QueryAudit<'_>,
    ) -> Result<QueryOutcome, SandboxError> {
        let spec = match &req.scope {
            Scope::Project { id } => self.authorize(&req.user, id, req.mode).await?,
            Scope::Dataset { name, .. } => self.dataset_spec(&req.user, name, req.mode).await?,
            Scope::Feasibility { organisation, .. } => {
                self.feasibility_spec(&req.user, organisation, req.mode)
                    .await?
            }
        };
        let _permits = self.acquire(req.scope.key()).await?;
        // Counted once running may start, so that a burst of queries queued together cannot
        // all pass on the same count.
        if req.mode == Mode::Real {
            self.refuse_if_paused(&req.user).await?;
        }
        let env = self.env(&spec, req.mode).await?;
        let planning = Instant::now();
        let checked = guard::check(&env, &self.policy, &req.sql).await?;
        audit.plan_ms = ms(planning.elapsed());
        audit.plan_digest = checked.plan_digest.clone();
        audit.tables = checked.tables.clone();
        let executing = Instant::now();
        let outcome = self
            .carry_out(&env, req, query_id, checked.intent, audit)
            .await;
        audit.exec_ms = ms(executing.elapsed());
        match outcome {
            // Whatever failed on real data reads the same: the cause could tell about it.
            Err(e) if req.mode == Mode::Real && e.arose_from_data() => {
                Err(SandboxError::RunFailed(Box::new(e)))
            }
            other => other,
        }
    }

    /// Carries out a checked statement.
    pub(crate) async fn carry_out(
        &self,
        env: &ProjectEnv,
        req: &QueryRequest,
        query_id: &str,
        intent: guard::Intent,
        audit: &mut QueryAudit<'_>,
    ) -> Result<QueryOutcome, SandboxError> {
        Ok(match intent {
            guard::Intent::Query(plan) => match req.mode {
                Mode::Dummy => {
                    let (schema, batches, rows) = self.execute(env, plan).await?;
                    audit.rows = rows;
                    audit.result_digest = outcome::digest(&schema, &batches)?;
                    QueryOutcome::rows(schema, batches, rows)
                }
                // Records leave only anonymised, never through disclosure control.
                Mode::Real if self.is_record_level(&req.scope) => {
                    self.anonymise(env, req, plan, audit).await?
                }
                Mode::Real => self.disclose(env, req, query_id, plan, audit).await?,
            },
            guard::Intent::CreateWork {
                name,
                replace,
                plan,
            } => {
                self.require_workspace(req).await?;
                let _w = self.work_lock.lock().await;
                if env.has_work_table(&name) && !replace {
                    return Err(SandboxError::Refused(format!(
                        "work.{name} exists; use CREATE OR REPLACE TABLE"
                    )));
                }
                let (schema, batches, rows) = self.execute(env, plan).await?;
                audit.rows = rows;
                audit.result_digest = outcome::digest(&schema, &batches)?;
                env.save_work(&name, &schema, &batches).await?;
                QueryOutcome::message(match req.mode {
                    Mode::Dummy => format!(
                        "created work.{name} ({rows} rows); it stays in the project workspace"
                    ),
                    // How many real rows it has is not told: it is not checked.
                    Mode::Real => {
                        format!(
                            "created work.{name} from real data; it stays in the project workspace"
                        )
                    }
                })
            }
            guard::Intent::DropWork { name, if_exists } => {
                self.require_workspace(req).await?;
                let _w = self.work_lock.lock().await;
                if !env.drop_work(&name)? && !if_exists {
                    return Err(SandboxError::Refused(format!("work.{name} does not exist")));
                }
                QueryOutcome::message(format!("dropped work.{name}"))
            }
        })
    }

    pub(crate) async fn require_workspace(&self, req: &QueryRequest) -> Result<(), SandboxError> {
        if self
            .platform
            .allows(&req.user, req.scope.key(), Action::WriteWorkspace)
            .await
        {
            Ok(())
        } else {
            Err(SandboxError::Denied(
                "writing to this project's workspace".into(),
            ))
        }
    }
}
