//! The Visiting environment. Every way in (CLI, HTTP, Flight SQL) calls [`Visiting::query`],
//! the one chokepoint: authorisation → limits on concurrency → the project's own catalog →
//! the guard ([`guard::check`]) → execution under memory and time limits → the result held
//! (real data, until disclosure control releases it) or returned (dummy data) → the audit log.
//! A plan that did not pass the guard is never executed; every outcome is logged.

pub mod engine;
pub mod guard;
mod outcome;
mod outputs;
pub mod testing;
mod udf;
pub mod views;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use futures::StreamExt;
use niji_audit::{AuditError, AuditLog};
use niji_catalog::{Catalog, DisclosureRole};
use niji_disclosure::{DisclosurePolicy, Ledger, Populations, Strictness, Verdict};
use niji_governance::{
    Action, Authz, GovernanceError, OutputOutcome, PlatformDb, ProjectSpec, User, UserRole,
};
use niji_pseudo::{CivilDate, CustodianKey};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};
use tracing::Instrument;

pub use engine::{Engine, LocalEngine, StopFlag};
pub use guard::SqlPolicy;
pub use outcome::{ColumnInfo, QueryOutcome, Status};
pub use outputs::{OutputView, Preview};
use views::ProjectEnv;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Refused(String),
    #[error("not permitted: {0}")]
    Denied(String),
    #[error("busy: {0}")]
    Busy(String),
    #[error("cancelled: {0}")]
    Cancelled(String),
    #[error("limit: {0}")]
    Limit(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("query engine: {0}")]
    Engine(#[from] DataFusionError),
    #[error(transparent)]
    Governance(#[from] GovernanceError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("synthetic store: {0}")]
    Synthetic(String),
    #[error(transparent)]
    Disclosure(#[from] niji_disclosure::DisclosureError),
    /// A real-data query failed while it ran. What failed could tell about the data, so the
    /// cause is kept for custodians (the audit log, by query id) and never shown or logged.
    #[error("the query failed while it ran on real data")]
    RunFailed(#[source] Box<SandboxError>),
}

impl SandboxError {
    /// The outcome status this error gives a query.
    pub fn status(&self) -> Status {
        match self {
            SandboxError::Refused(_) | SandboxError::Denied(_) | SandboxError::Busy(_) => {
                Status::Refused
            }
            _ => Status::Error,
        }
    }

    /// What kind of failure this is, for logs that may not carry its text.
    pub fn kind(&self) -> &'static str {
        match self {
            SandboxError::Refused(_) => "refused",
            SandboxError::Denied(_) => "denied",
            SandboxError::Busy(_) => "busy",
            SandboxError::Cancelled(_) => "cancelled",
            SandboxError::Limit(_) => "limit",
            SandboxError::Unavailable(_) => "unavailable",
            SandboxError::Config(_) => "configuration",
            SandboxError::Engine(_) => "engine",
            SandboxError::Governance(_) => "governance",
            SandboxError::Audit(_) => "audit",
            SandboxError::Io(_) => "file",
            SandboxError::Parquet(_) => "parquet",
            SandboxError::Synthetic(_) => "synthetic store",
            SandboxError::Disclosure(_) => "disclosure",
            SandboxError::RunFailed(_) => "run failed",
        }
    }

    /// Whether this error comes from running on data (a refusal, a denial or a busy server
    /// is decided before any data is read).
    fn arose_from_data(&self) -> bool {
        !matches!(
            self,
            SandboxError::Refused(_) | SandboxError::Denied(_) | SandboxError::Busy(_)
        )
    }

    /// The error and its sources, one after another: for custodians only.
    pub fn full_text(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    /// What the caller is told: the reason for refusals and limits, never file paths, keys
    /// or engine internals (those go to the server's log under the query id), and nothing of
    /// why a real-data query failed.
    pub fn public_message(&self) -> String {
        match self {
            SandboxError::RunFailed(_) => {
                "the query could not be completed on real data; why is not shown, as it could tell about the data (develop the query on dummy data, or ask the custodian, quoting the query id)".into()
            }
            SandboxError::Refused(m) => m.clone(),
            SandboxError::Denied(_)
            | SandboxError::Busy(_)
            | SandboxError::Cancelled(_)
            | SandboxError::Limit(_) => self.to_string(),
            SandboxError::Engine(e) => match e.find_root() {
                DataFusionError::ResourcesExhausted(_) => {
                    "limit: the query needed more memory than its limit".into()
                }
                DataFusionError::ArrowError(a, _) => {
                    format!("query failed: {}", without_paths(&a.to_string()))
                }
                DataFusionError::Execution(m) => format!("query failed: {}", without_paths(m)),
                _ => "query failed: internal error".into(),
            },
            SandboxError::Governance(GovernanceError::Spec(m)) => format!("invalid: {m}"),
            SandboxError::Governance(GovernanceError::Exists(m)) => format!("{m} already exists"),
            SandboxError::Governance(GovernanceError::NotFound(m)) => format!("no such {m}"),
            _ => "internal error".into(),
        }
    }
}

/// An execution error's first line, unless it names a file (the store's layout is internal;
/// planning errors, which quote the caller's own SQL, are passed on as they are).
fn without_paths(s: &str) -> String {
    let line = guard::first_line(s);
    if line.contains('/') {
        "internal error".into()
    } else {
        line
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Dummy data generated from the catalog: rows may be seen.
    Dummy,
    /// The real store: results are held for disclosure control.
    Real,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dummy => "dummy",
            Mode::Real => "real",
        }
    }
}

/// `sandbox/limits.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub memory_per_query_mb: usize,
    pub timeout_seconds: u64,
    pub concurrent_per_project: usize,
    pub concurrent_overall: usize,
    pub queue_wait_ms: u64,
    pub max_result_rows: usize,
    #[serde(default)]
    pub target_partitions: usize,
    /// Real-data queries of one user that may fail within an hour before their real-data
    /// queries are paused and a custodian alerted (0: never paused).
    #[serde(default = "default_real_failures_per_hour")]
    pub real_failures_per_hour: u32,
}

fn default_real_failures_per_hour() -> u32 {
    10
}

/// Audit actions of real-data failures: one the researcher was told of, and one hidden behind
/// a held outcome (its query was held for its shape, whether or not it ran to the end).
const FAILED: &str = "query.failed";
const FAILED_BEHIND_HELD: &str = "query.failed_held";

/// Reads a settings file; any problem is a configuration error naming the file.
pub(crate) fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SandboxError> {
    let bad = |e: &dyn std::fmt::Display| SandboxError::Config(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    toml::from_str(&text).map_err(|e| bad(&e))
}

impl Limits {
    pub fn load(path: &Path) -> Result<Self, SandboxError> {
        let limits: Limits = load_toml(path)?;
        if limits.concurrent_overall == 0 || limits.concurrent_per_project == 0 {
            return Err(SandboxError::Config(
                "concurrency limits must be at least 1".into(),
            ));
        }
        Ok(limits)
    }
}

/// Where the Visiting environment finds everything.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    pub catalog_dir: PathBuf,
    /// `model.conf`, `policy.csv`, `sql.toml`.
    pub policies_dir: PathBuf,
    pub limits_file: PathBuf,
}

/// A query as it reaches the chokepoint.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub user: String,
    pub project: String,
    pub mode: Mode,
    pub sql: String,
    /// Entry point, for the audit log (`cli`, `http`, `flight`).
    pub via: &'static str,
}

/// Files removed when a project closed, as recorded in the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionCertificate {
    pub project: String,
    pub files: Vec<DeletedFile>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeletedFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
struct QueryAudit<'a> {
    query_id: &'a str,
    project: &'a str,
    mode: Mode,
    via: &'a str,
    engine: &'static str,
    sql: &'a str,
    plan_digest: String,
    tables: Vec<String>,
    rows: usize,
    result_digest: String,
    outcome: Status,
    message: String,
    plan_ms: u128,
    exec_ms: u128,
    /// Disclosure control: cells masked, the time its checks took after execution, and
    /// whether bounds on contributions left a rule unsettled, so that the exact shadow ran too
    /// (within that time).
    suppressed: usize,
    check_ms: u128,
    rechecked: bool,
    /// Magnitudes whose largest contributions the store's ceilings bounded (nothing summed per
    /// person for them), and aggregations whose cells were taken from the store's strata
    /// (nothing read of their rows' persons).
    ceiled: usize,
    stratified: usize,
    total_ms: u128,
}

/// The dummy store is generated once per data directory from the catalog's synthetic model.
const DUMMY_PERSONS: u64 = 2_000;
const DUMMY_SEED: u64 = 0x6e69_6a69_6475_6d6d;
/// The dummy store has a key of its own, so nothing keyed in it matches the real store.
const DUMMY_KEY_LABEL: &[u8] = b"niji/dummy-store/v1";

/// Today as `YYYY-MM-DD`, the form project expiry dates are compared in.
pub fn today() -> String {
    CivilDate::today().to_string()
}

#[derive(Debug)]
pub struct Visiting {
    settings: Settings,
    catalog: Arc<Catalog>,
    key: CustodianKey,
    dummy_key: Arc<CustodianKey>,
    pub db: PlatformDb,
    pub authz: Authz,
    pub audit: AuditLog,
    policy: SqlPolicy,
    disclosure: DisclosurePolicy,
    limits: Limits,
    engine: Arc<dyn Engine>,
    /// File listings, Parquet footers and spill files, shared by all queries; each query gets
    /// its own memory pool on top.
    runtime: Arc<RuntimeEnv>,
    /// The threads plans run on, apart from the caller's: an operator that does not yield (a
    /// cross join fed from memory) then holds only these, and the caller's timers, queue waits
    /// and other requests go on.
    queries: QueryRuntime,
    envs: Mutex<HashMap<(String, Mode), Arc<ProjectEnv>>>,
    /// Person sets of each project's released cells; checks and releases of one project
    /// take turns, so that two results cannot each pass against a ledger without the other.
    ledgers: Mutex<HashMap<String, Arc<Mutex<KeptLedger>>>>,
    populations: tokio::sync::OnceCell<Populations>,
    /// Off only to measure what the checks cost: real results are then all held.
    release_checks: std::sync::atomic::AtomicBool,
    overall: Arc<Semaphore>,
    per_project: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Workspace writes of one project are serialised.
    work_lock: Mutex<()>,
    /// Votes are counted one at a time, so that two second approvals cannot both release.
    review_lock: Mutex<()>,
    /// Real-data failures are recorded and counted one at a time (one alert at the limit).
    failure_lock: Mutex<()>,
    dummy_lock: Mutex<()>,
}

/// A project's release ledger and the last row of `released_sets` it has read.
#[derive(Debug, Default)]
struct KeptLedger {
    ledger: Ledger,
    seen: i64,
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl Visiting {
    pub async fn open(settings: Settings, engine: Arc<dyn Engine>) -> Result<Self, SandboxError> {
        let key = CustodianKey::load(&settings.key_file)
            .map_err(|e| SandboxError::Config(e.to_string()))?;
        let catalog = Catalog::load(&settings.catalog_dir)
            .map_err(|e| SandboxError::Config(e.to_string()))?;
        let policy = SqlPolicy::load(&settings.policies_dir.join("sql.toml"))?;
        let disclosure = DisclosurePolicy::load(&settings.policies_dir.join("disclosure.toml"))?;
        let limits = Limits::load(&settings.limits_file)?;
        std::fs::create_dir_all(&settings.data_dir)?;
        let db_path = settings.data_dir.join("niji.db");
        let anchor = settings.key_file.with_file_name("audit.anchor");
        let audit = AuditLog::open(&db_path, &anchor, &key).await?;
        let db = PlatformDb::open(&db_path).await?;
        let authz = Authz::load(&settings.policies_dir, &db, &today()).await?;
        let dummy_key = Arc::new(CustodianKey::from_bytes(
            *key.derive_labelled(DUMMY_KEY_LABEL),
        ));
        Ok(Self {
            overall: Arc::new(Semaphore::new(limits.concurrent_overall)),
            settings,
            catalog: Arc::new(catalog),
            key,
            dummy_key,
            db,
            authz,
            audit,
            policy,
            disclosure,
            limits,
            engine,
            runtime: RuntimeEnvBuilder::new().build_arc()?,
            queries: QueryRuntime::new()?,
            envs: Mutex::new(HashMap::new()),
            ledgers: Mutex::new(HashMap::new()),
            populations: tokio::sync::OnceCell::new(),
            release_checks: std::sync::atomic::AtomicBool::new(true),
            per_project: Mutex::new(HashMap::new()),
            work_lock: Mutex::new(()),
            review_lock: Mutex::new(()),
            failure_lock: Mutex::new(()),
            dummy_lock: Mutex::new(()),
        })
    }

    /// Switches disclosure control's checks off (every real result is then held, nothing is
    /// released) or on. For benchmarks, which compare the two.
    pub fn set_release_checks(&self, on: bool) {
        self.release_checks
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn project_dir(&self, project: &str) -> PathBuf {
        self.settings.data_dir.join("projects").join(project)
    }

    /// Creates a user; the token is returned once and stored only as a digest.
    pub async fn add_user(
        &self,
        actor: &str,
        name: &str,
        role: UserRole,
    ) -> Result<String, SandboxError> {
        let token = self.db.add_user(name, role).await?;
        self.audit
            .append(
                actor,
                "user.add",
                &serde_json::json!({"user": name, "role": role.as_str()}),
            )
            .await?;
        self.authz.reload(&self.db, &today()).await?;
        Ok(token)
    }

    /// Checks a user's token; every attempt is logged (never the token).
    pub async fn sign_in(&self, name: &str, token: &str, via: &str) -> Result<User, SandboxError> {
        let user = self.db.authenticate(name, token).await?;
        let shown: String = name.chars().take(64).collect();
        self.audit
            .append(
                &shown,
                "signin",
                &serde_json::json!({"via": via, "outcome": if user.is_some() { "ok" } else { "refused" }}),
            )
            .await?;
        user.ok_or_else(|| SandboxError::Denied("unknown user or wrong token".into()))
    }

    pub async fn create_project(
        &self,
        actor: &str,
        spec: &ProjectSpec,
    ) -> Result<(), SandboxError> {
        spec.validate(&self.catalog)?;
        if spec.expires.as_str() < today().as_str() {
            return Err(SandboxError::Governance(GovernanceError::Spec(
                "the project has already expired".into(),
            )));
        }
        self.db.create_project(spec).await?;
        self.audit
            .append(
                actor,
                "project.create",
                &serde_json::json!({"project": spec.id, "spec": spec}),
            )
            .await?;
        self.authz.reload(&self.db, &today()).await?;
        Ok(())
    }

    /// Closes a project: its workspaces and held results are deleted, and what was deleted
    /// (path, size, SHA-256 of every file) is recorded as the deletion certificate.
    pub async fn close_project(
        &self,
        actor: &str,
        id: &str,
    ) -> Result<DeletionCertificate, SandboxError> {
        if !self.db.close_project(id).await? {
            return Err(SandboxError::Governance(GovernanceError::NotFound(
                format!("open project {id}"),
            )));
        }
        self.authz.reload(&self.db, &today()).await?;
        self.envs.lock().await.retain(|(p, _), _| p != id);
        let dir = self.project_dir(id);
        let mut files = Vec::new();
        collect_files(&dir, &dir, &mut files)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let certificate = DeletionCertificate {
            project: id.to_string(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
        };
        self.audit
            .append(
                actor,
                "project.close",
                &serde_json::json!({"project": id, "deletion_certificate": certificate}),
            )
            .await?;
        Ok(certificate)
    }

    /// The spec of project `id` if it is open and unexpired and `user` may work in it in
    /// `mode`; otherwise one refusal that does not say which of these failed. Read from the
    /// database on every call, so a project closed by another process refuses at once.
    async fn authorize(
        &self,
        user: &str,
        id: &str,
        mode: Mode,
    ) -> Result<ProjectSpec, SandboxError> {
        let action = match mode {
            Mode::Dummy => Action::QueryDummy,
            Mode::Real => Action::QueryReal,
        };
        match self.db.project(id).await? {
            Some(p) if p.is_live(&today()) && self.authz.allows(user, id, action).await => {
                Ok(p.spec)
            }
            _ => Err(SandboxError::Denied(format!(
                "no open project {id} for this user"
            ))),
        }
    }

    /// Generates and ingests the dummy store if this data directory has none.
    async fn ensure_dummy_store(&self) -> Result<PathBuf, SandboxError> {
        let _guard = self.dummy_lock.lock().await;
        let dir = self.settings.data_dir.join("dummy");
        let done = dir.join("dummy.done");
        if done.exists() {
            return Ok(dir);
        }
        let (catalog, key, out) = (self.catalog.clone(), self.dummy_key.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let mut cfg =
                niji_synth::SynthConfig::new(DUMMY_PERSONS, DUMMY_SEED, out.join("synth"));
            cfg.defect_rate = 0.0;
            synthetic_store(&catalog, &key, &cfg, &out, Vec::new())?;
            std::fs::write(out.join("dummy.done"), b"")?;
            Ok::<_, SandboxError>(())
        })
        .await
        .map_err(|e| SandboxError::Synthetic(e.to_string()))??;
        Ok(dir)
    }

    /// The project's context in `mode`, built on first use. The cache stays locked while one
    /// is built, so concurrent first queries build it once.
    async fn env(&self, spec: &ProjectSpec, mode: Mode) -> Result<Arc<ProjectEnv>, SandboxError> {
        let mut envs = self.envs.lock().await;
        let cache_key = (spec.id.clone(), mode);
        let (data_dir, key) = match mode {
            Mode::Real => (self.settings.data_dir.clone(), &self.key),
            Mode::Dummy => (self.ensure_dummy_store().await?, &*self.dummy_key),
        };
        // Views depend on the store's contents (pseudonym dictionary, filters left out because
        // no row fails them): a store published anew means views built anew.
        if let Some(env) = envs.get(&cache_key)
            && env.built_from == views::store_stamp(&data_dir)
        {
            return Ok(env.clone());
        }
        let workspace = self.project_dir(&spec.id).join(mode.as_str()).join("work");
        let env = Arc::new(
            ProjectEnv::build(
                spec,
                mode,
                &self.catalog,
                &data_dir,
                key,
                &self.limits,
                workspace,
            )
            .await?,
        );
        envs.insert(cache_key, env.clone());
        Ok(env)
    }

    /// The project's tables and columns as its members see them.
    pub async fn project_tables(
        &self,
        user: &str,
        project: &str,
        mode: Mode,
    ) -> Result<Vec<(String, SchemaRef)>, SandboxError> {
        let spec = self.authorize(user, project, mode).await?;
        let env = self.env(&spec, mode).await?;
        let mut out = Vec::new();
        let catalog = env
            .ctx
            .catalog(views::CATALOG)
            .ok_or_else(|| SandboxError::Unavailable("project catalog".into()))?;
        let mut schemas = catalog.schema_names();
        schemas.sort();
        for s in schemas {
            let Some(schema) = catalog.schema(&s) else {
                continue;
            };
            let mut names = schema.table_names();
            names.sort();
            for t in names {
                if let Some(table) = schema.table(&t).await? {
                    out.push((format!("{s}.{t}"), table.schema()));
                }
            }
        }
        Ok(out)
    }

    /// Projects `user` is a member of (open ones).
    pub async fn projects_of(&self, user: &str) -> Result<Vec<ProjectSpec>, SandboxError> {
        let today = today();
        Ok(self
            .db
            .projects()
            .await?
            .into_iter()
            .filter(|p| p.is_live(&today))
            .filter(|p| p.spec.members.iter().any(|m| m.user == user))
            .map(|p| p.spec)
            .collect())
    }

    /// The chokepoint. Never fails: every outcome, refusals included, is a [`QueryOutcome`]
    /// and an audit entry. If the audit entry cannot be written the outcome is an error and
    /// no rows are returned.
    pub async fn query(&self, req: &QueryRequest) -> QueryOutcome {
        let query_id = outcome::new_query_id();
        let span = tracing::info_span!("query", %query_id, project = %req.project, user = %req.user, mode = req.mode.as_str(), via = req.via);
        self.query_with_id(req, query_id).instrument(span).await
    }

    async fn query_with_id(&self, req: &QueryRequest, query_id: String) -> QueryOutcome {
        let started = Instant::now();
        let mut audit = QueryAudit {
            query_id: &query_id,
            project: &req.project,
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
        if let Err(e) = self.audit.append(&req.user, "query", &audit).await {
            tracing::error!(error = %e, "audit append failed; withholding the result");
            result = Err(SandboxError::Audit(e));
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
            Err(e) => QueryOutcome::failed(query_id, e.status(), e.public_message()),
        }
    }

    async fn acquire(
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

    async fn run(
        &self,
        req: &QueryRequest,
        query_id: &str,
        audit: &mut QueryAudit<'_>,
    ) -> Result<QueryOutcome, SandboxError> {
        let spec = self.authorize(&req.user, &req.project, req.mode).await?;
        let _permits = self.acquire(&req.project).await?;
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
    async fn carry_out(
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

    /// Real-data failures of `user` the researcher was told of within the last hour.
    async fn recent_failures(&self, user: &str) -> Result<i64, SandboxError> {
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        Ok(self
            .audit
            .count_since(user, FAILED, &niji_audit::rfc3339(hour_ago))
            .await?)
    }

    /// Each failure a researcher sees tells a bit about the data, whatever it says: past
    /// `real_failures_per_hour` of them, their real-data queries wait for the hour to pass
    /// (a custodian was alerted when the limit was reached).
    async fn refuse_if_paused(&self, user: &str) -> Result<(), SandboxError> {
        let limit = i64::from(self.limits.real_failures_per_hour);
        if limit > 0 && self.recent_failures(user).await? >= limit {
            return Err(SandboxError::Refused(
                "your real-data queries are paused: too many of them failed within the last hour, and a custodian has been alerted; dummy data stays open".into(),
            ));
        }
        Ok(())
    }

    /// Keeps why a real-data query failed where only custodians read it (the audit log, under
    /// the query id). A failure the researcher was `told` of counts towards pausing their
    /// real-data queries; the one that reaches the limit raises an alert.
    async fn record_failure(
        &self,
        req: &QueryRequest,
        query_id: &str,
        cause: &SandboxError,
        told: bool,
    ) -> Result<(), SandboxError> {
        let action = if told { FAILED } else { FAILED_BEHIND_HELD };
        // Recorded and counted one at a time, so that exactly one failure reaches the limit.
        let _counting = self.failure_lock.lock().await;
        let detail = serde_json::json!({
            "query_id": query_id,
            "project": req.project,
            "kind": cause.kind(),
            "cause": cause.full_text(),
        });
        self.audit.append(&req.user, action, &detail).await?;
        let limit = self.limits.real_failures_per_hour;
        if told && limit > 0 && self.recent_failures(&req.user).await? == i64::from(limit) {
            tracing::warn!("real-data queries paused after repeated failures; custodian alerted");
            let alert = serde_json::json!({
                "rule": "real_failures_per_hour",
                "user": req.user,
                "limit": limit,
                "query_id": query_id,
            });
            self.audit.append("niji", "alert", &alert).await?;
        }
        Ok(())
    }

    /// Runs a real-data query with disclosure control: the plan's shadow computes, in the same
    /// pass, who stands behind each cell; the rules decide what leaves. What cannot be checked
    /// or may not leave is held in the project workspace, where output checkers can see it.
    async fn disclose(
        &self,
        env: &ProjectEnv,
        req: &QueryRequest,
        query_id: &str,
        plan: datafusion::logical_expr::LogicalPlan,
        audit: &mut QueryAudit<'_>,
    ) -> Result<QueryOutcome, SandboxError> {
        let visible = outcome::nullable(plan.schema().as_arrow());
        let shadow = if !self
            .release_checks
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            Err(niji_disclosure::Unsupported(
                "disclosure checks are switched off".into(),
            ))
        } else {
            self.shadow_of(env, &req.sql, &visible, true).await
        };
        // A shape that may not leave is held before it runs, whatever its rows.
        let shadow = shadow.and_then(|shadow| {
            match niji_disclosure::rules::held_for_shape(&shadow, &self.catalog) {
                Some(why) => Err(niji_disclosure::Unsupported(why)),
                None => Ok(shadow),
            }
        });
        let mut shadow = match shadow {
            Ok(shadow) => shadow,
            Err(niji_disclosure::Unsupported(why)) => {
                return self
                    .hold_as_shaped(env, req, query_id, plan, &why, audit)
                    .await;
            }
        };
        audit.ceiled = shadow.ceiled;
        audit.stratified = shadow.stratified;
        let mut checking = None;
        let (shadow_schema, batches, rows, verdict) = loop {
            let (shadow_schema, batches, rows) = self.execute(env, shadow.plan.clone()).await?;
            checking.get_or_insert_with(Instant::now);
            let verdict = self
                .judge(
                    &req.project,
                    query_id,
                    &shadow,
                    &batches,
                    Strictness::Automatic,
                    true,
                )
                .await?;
            if !matches!(verdict, Verdict::Recheck) || audit.rechecked {
                break (shadow_schema, batches, rows, verdict);
            }
            tracing::info!("bounds on contributions left a rule unsettled: checking exactly");
            audit.rechecked = true;
            shadow = self
                .shadow_of(env, &req.sql, &visible, false)
                .await
                .map_err(|niji_disclosure::Unsupported(why)| {
                    niji_disclosure::DisclosureError::Check(why)
                })?;
        };
        let checking = checking.unwrap_or_else(Instant::now);
        let result = outcome::visible_part(&batches, &visible)?;
        audit.rows = rows;
        audit.result_digest = outcome::digest(&visible, &result)?;
        let outcome = match verdict {
            Verdict::Hold(why) => {
                self.hold(req, query_id, &visible, Some((&visible, &result)), &why)
                    .await?
            }
            // The exact shadow settles every rule.
            Verdict::Recheck => {
                return Err(niji_disclosure::DisclosureError::Check(
                    "exact contributions did not settle the rules".into(),
                )
                .into());
            }
            Verdict::Release {
                batch,
                suppressed,
                totals,
                small_groups_withheld,
                ..
            } => {
                if !suppressed.is_empty() {
                    // The unmasked result (and its shadow) stays in, for output checkers.
                    let findings = serde_json::json!({ "suppressed": suppressed });
                    self.keep_output(
                        req,
                        query_id,
                        OutputOutcome::Suppressed,
                        Some((&shadow_schema, &batches)),
                        findings,
                    )
                    .await?;
                }
                audit.suppressed = suppressed.len();
                QueryOutcome::released(batch, suppressed, small_groups_withheld).with_totals(totals)
            }
        };
        audit.check_ms = ms(checking.elapsed());
        Ok(outcome)
    }

    /// Holds a query held for its shape, whether or not it runs to the end: its outcome must not
    /// tell whether it failed on the way (the failure is kept for custodians, and does not
    /// count towards the researcher's pause, since they were not told of it).
    async fn hold_as_shaped(
        &self,
        env: &ProjectEnv,
        req: &QueryRequest,
        query_id: &str,
        plan: datafusion::logical_expr::LogicalPlan,
        why: &str,
        audit: &mut QueryAudit<'_>,
    ) -> Result<QueryOutcome, SandboxError> {
        // The columns shown are the planned ones, in both cases: the types of the rows run
        // (after coercion) would tell apart the outcome of a run that failed.
        let shown = match env.ctx.state().optimize(&plan) {
            Ok(optimized) => outcome::nullable(optimized.schema().as_arrow()),
            Err(_) => outcome::nullable(plan.schema().as_arrow()),
        };
        match self.execute(env, plan).await {
            Ok((schema, batches, rows)) => {
                audit.rows = rows;
                audit.result_digest = outcome::digest(&schema, &batches)?;
                self.hold(req, query_id, &shown, Some((&schema, &batches)), why)
                    .await
            }
            Err(e) => {
                if let Err(failed) = self.record_failure(req, query_id, &e, false).await {
                    tracing::error!(error = %failed, "recording a hidden failure failed");
                }
                self.hold(req, query_id, &shown, None, why).await
            }
        }
    }

    /// The shadow of `sql` (whose checked plan has the `visible` schema) in `env`, or why it
    /// has none; `bounded`: with bounds on the largest contributions, by the ceilings of the
    /// project's views where they apply (see
    /// [`niji_disclosure::shadow`]).
    async fn shadow_of(
        &self,
        env: &ProjectEnv,
        sql: &str,
        visible: &arrow::datatypes::Schema,
        bounded: bool,
    ) -> Result<niji_disclosure::Shadow, niji_disclosure::Unsupported> {
        let plan = guard::plan_shadow(env, sql)
            .await
            .map_err(|e| niji_disclosure::Unsupported(e.public_message()))?;
        let bounds = bounded.then_some(&env.bounds);
        niji_disclosure::shadow(plan, visible, self.disclosure.facility_cap(), bounds)
    }

    /// Applies the rules to a shadow result under the project's release ledger; when `record`
    /// and something is released, its person sets join the ledger (recorded in the platform
    /// database before the result leaves, so that a crash never forgets a release).
    async fn judge(
        &self,
        project: &str,
        query_id: &str,
        shadow: &niji_disclosure::Shadow,
        batches: &[RecordBatch],
        strictness: Strictness,
        record: bool,
    ) -> Result<Verdict, SandboxError> {
        let populations = self.populations().await?;
        let project_ledger = self
            .ledgers
            .lock()
            .await
            .entry(project.to_string())
            .or_default()
            .clone();
        let mut guard = project_ledger.lock().await;
        let kept = &mut *guard;
        // Other processes (the CLI beside a server) release too: catch up with the database
        // before every check, so that differencing sees every release of the project.
        let new = self.db.released_sets_since(project, kept.seen).await?;
        if let Some((last, _)) = new.last() {
            kept.seen = *last;
            let sets = new
                .iter()
                .map(|(_, bytes)| niji_disclosure::sets::decode_set(bytes))
                .collect::<Result<Vec<_>, _>>()?;
            kept.ledger.extend(sets);
        }
        let ledger = &mut kept.ledger;
        let mut verdict = niji_disclosure::check(
            shadow,
            batches,
            &self.catalog,
            &self.disclosure,
            ledger,
            populations,
            strictness,
        )?;
        if let Verdict::Release { released_sets, .. } = &mut verdict
            && record
        {
            // Sets released before are not recorded again. The new ones join the ledger now:
            // should recording fail, the result does not leave, and the ledger is only stricter.
            released_sets.retain(|kept| ledger.add(&kept.described()));
            let encoded: Vec<Vec<u8>> = released_sets
                .iter()
                .map(|kept| niji_disclosure::sets::encode_set(kept.set()))
                .collect();
            if let Some(last) = self
                .db
                .record_released_sets(project, query_id, &encoded, kept.seen)
                .await?
            {
                kept.seen = last;
            }
        }
        Ok(verdict)
    }

    /// Inhabitants per municipality, read once from the real store.
    async fn populations(&self) -> Result<&Populations, SandboxError> {
        self.populations
            .get_or_try_init(|| load_populations(&self.catalog, &self.settings.data_dir))
            .await
    }

    async fn require_workspace(&self, req: &QueryRequest) -> Result<(), SandboxError> {
        if self
            .authz
            .allows(&req.user, &req.project, Action::WriteWorkspace)
            .await
        {
            Ok(())
        } else {
            Err(SandboxError::Denied(
                "writing to this project's workspace".into(),
            ))
        }
    }

    /// Runs a checked plan with the query's own memory pool and time limit, keeping at most
    /// `max_result_rows` rows (more is an error, never a silent cut).
    async fn execute(
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
        let mut task = self.queries.handle.spawn(async move {
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
        match tokio::time::timeout(limit, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(SandboxError::Unavailable(format!("query task ended: {e}"))),
            Err(_) => {
                stop.0.stop();
                task.abort();
                Err(SandboxError::Cancelled(format!(
                    "the query ran longer than its {} s limit",
                    self.limits.timeout_seconds
                )))
            }
        }
    }
}

/// Inhabitants per municipality code, from the catalog's table with a population column (none
/// when it was not ingested: then no cell about a municipality is released).
async fn load_populations(catalog: &Catalog, data_dir: &Path) -> Result<Populations, SandboxError> {
    let store = niji_ingest::store::Store::new(data_dir);
    let Some((db, table)) = catalog.databases.iter().find_map(|(db, d)| {
        d.tables
            .iter()
            .find(|t| t.column_for(DisclosureRole::Population).is_some())
            .map(|t| (db, t))
    }) else {
        return Ok(Populations::default());
    };
    let (Some(code), Some(population), Ok(Some(_))) = (
        table.column_for(DisclosureRole::Municipality),
        table.column_for(DisclosureRole::Population),
        store.manifest(db, &table.name),
    ) else {
        return Ok(Populations::default());
    };
    let batches = datafusion::prelude::SessionContext::new()
        .read_parquet(
            store
                .table_dir(db, &table.name)
                .to_string_lossy()
                .into_owned(),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await?
        .select_columns(&[&code.name, &population.name])?
        .collect()
        .await?;
    let mut map = HashMap::new();
    for b in &batches {
        let cast =
            |i: usize, ty| arrow::compute::cast(b.column(i), &ty).map_err(DataFusionError::from);
        let codes = cast(0, arrow::datatypes::DataType::Utf8)?;
        let pops = cast(1, arrow::datatypes::DataType::UInt64)?;
        let (codes, pops) = (
            codes.as_string::<i32>(),
            pops.as_primitive::<arrow::datatypes::UInt64Type>(),
        );
        for i in (0..b.num_rows()).filter(|&i| codes.is_valid(i) && pops.is_valid(i)) {
            map.insert(codes.value(i).to_string(), pops.value(i));
        }
    }
    Ok(Populations(map))
}

struct StopOnDrop(StopFlag);

/// A runtime of its own for running plans, shut down without waiting (a runtime may not be
/// dropped, waiting, inside another).
#[derive(Debug)]
struct QueryRuntime {
    handle: tokio::runtime::Handle,
    /// Taken only when dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl QueryRuntime {
    fn new() -> Result<Self, SandboxError> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("niji-query")
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Generates `cfg.persons` synthetic persons into `cfg.out`, ingests them (all tables, or
/// `only`) under `key` into `data_dir`, and removes the generated extracts and truth. Blocking:
/// the dummy store, the test environments and the benchmarks are all made this way.
pub fn synthetic_store(
    catalog: &Catalog,
    key: &CustodianKey,
    cfg: &niji_synth::SynthConfig,
    data_dir: &Path,
    only: Vec<String>,
) -> Result<niji_ingest::IngestReport, SandboxError> {
    let failed = |e: &dyn std::fmt::Display| SandboxError::Synthetic(e.to_string());
    niji_synth::generate(cfg, &|_, _| {}).map_err(|e| failed(&e))?;
    let mut opts = niji_ingest::IngestOptions::new(cfg.out.join("raw"), data_dir.to_path_buf());
    opts.only = only;
    let report = niji_ingest::ingest(catalog, key, &opts, &|_| {}).map_err(|e| failed(&e))?;
    std::fs::remove_dir_all(&cfg.out)?;
    Ok(report)
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<DeletedFile>) -> Result<(), SandboxError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let bytes = std::fs::read(&path)?;
            use sha2::Digest;
            out.push(DeletedFile {
                path: path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned(),
                bytes: bytes.len() as u64,
                sha256: niji_pseudo::hex32(&sha2::Sha256::digest(&bytes).into()),
            });
        }
    }
    Ok(())
}
