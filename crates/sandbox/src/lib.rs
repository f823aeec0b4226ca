//! The Visiting environment. Every way in (CLI, HTTP, Flight SQL) calls [`Visiting::query`],
//! the one chokepoint: authorisation → limits on concurrency → the project's own catalog →
//! the guard ([`guard::check`]) → execution under memory and time limits → the result held
//! (real data, until disclosure control releases it) or returned (dummy data) → the audit log.
//! A plan that did not pass the guard is never executed; every outcome is logged.
//!
//! Here: [`Visiting`] itself, its project contexts and the dummy store. The chokepoint's steps
//! are in `chokepoint` (authorise, admit, plan, carry out, audit), `execute` (a checked plan
//! under its limits), `disclose` (real results through disclosure control) and `failures`
//! (real-data failures kept for custodians); users and projects in `projects`; output review
//! in `outputs`.

mod chokepoint;
mod consent;
mod datasets;
mod disclose;
mod dummy;
pub mod engine;
mod error;
mod execute;
mod failures;
mod feasibility;
pub mod guard;
mod outcome;
mod outputs;
mod projects;
mod risk;
mod scope;
mod scripts;
mod settings;
mod stale;
mod threads;
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
use niji_audit::AuditError;
use niji_catalog::{Catalog, DisclosureRole};
use niji_disclosure::{DisclosurePolicy, Ledger, Populations, Strictness, Verdict};
use niji_governance::{Action, GovernanceError, OutputOutcome, Platform, ProjectSpec};
use niji_pseudo::CustodianKey;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};
use tracing::Instrument;

pub use engine::{Engine, LocalEngine, StopFlag};
pub use guard::SqlPolicy;
pub use outcome::{ColumnInfo, QueryOutcome, Status, new_query_id};
pub use outputs::{OutputView, Preview};
pub use udf::wire::{decode_view_function, encode_view_function};
use views::ProjectEnv;

pub use chokepoint::QueryRequest;
use chokepoint::{QueryAudit, ms};
pub use consent::WithdrawalReport;
pub use datasets::{DatasetFormat, Delivery, PublishedTable};
use disclose::KeptLedger;
pub use dummy::DummyStoreMaker;
pub use error::{Failure, SandboxError};
pub use feasibility::{CountAnswer, CountRequest};
pub use niji_governance::{DeletedFile, DeletionCertificate};
pub use scope::{Compiled, Scope};
pub(crate) use settings::load_toml;
pub use settings::{Limits, Mode, Settings};
pub use threads::{DEMOTED_NICE, RunningPlan};

/// The dummy store has a key of its own, so nothing keyed in it matches the real store.
const DUMMY_KEY_LABEL: &[u8] = b"niji/dummy-store/v1";

pub use niji_governance::today;

#[derive(Debug)]
pub struct Visiting {
    settings: Settings,
    catalog: Arc<Catalog>,
    key: CustodianKey,
    dummy_key: Arc<CustodianKey>,
    /// Users, projects, output review and the audit log: the platform service.
    platform: Arc<Platform>,
    policy: SqlPolicy,
    disclosure: DisclosurePolicy,
    limits: Limits,
    engine: Arc<dyn Engine>,
    /// File listings, Parquet footers and spill files, shared by all queries; each query gets
    /// its own memory pool on top.
    runtime: Arc<RuntimeEnv>,
    /// The plans running now, each on threads of its own ([`threads`]).
    running: Arc<threads::Running>,
    envs: Mutex<HashMap<(String, Mode), Arc<ProjectEnv>>>,
    /// Person sets of each project's released cells; checks and releases of one project
    /// take turns, so that two results cannot each pass against a ledger without the other.
    ledgers: Mutex<HashMap<String, Arc<Mutex<KeptLedger>>>>,
    populations: tokio::sync::OnceCell<Populations>,
    /// Off only to measure what the checks cost: real results are then all held.
    #[cfg(feature = "bench")]
    release_checks: std::sync::atomic::AtomicBool,
    overall: Arc<Semaphore>,
    per_project: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Workspace writes of one project are serialised.
    work_lock: Mutex<()>,
    /// Real-data failures are recorded and counted one at a time (one alert at the limit).
    failure_lock: Mutex<()>,
    dummy_lock: Mutex<()>,
    /// Persons per cohort code, for risk summaries (counted once per store state).
    code_counts: Mutex<risk::CodeCounts>,
    make_dummy: DummyStoreMaker,
    /// Standard dataset definitions (`catalog/standard/`), the disclosure policy's text (part
    /// of every dataset version) and the lock builds take turns on.
    standard: niji_catalog::standard::StandardDatasets,
    disclosure_text: String,
    /// The anonymisation policy of record-level extracts, and its text (part of their
    /// versions).
    anonymisation: niji_anonymise::AnonymisationPolicy,
    anonymisation_text: String,
    dataset_builds: Mutex<()>,
    /// Feasibility counts take turns from their quota check to their audit entry.
    count_lock: Mutex<()>,
}

impl Visiting {
    /// Opens the environment over `settings`' store; dummy data is made on first use by
    /// `make_dummy`.
    pub async fn open(
        settings: Settings,
        engine: Arc<dyn Engine>,
        make_dummy: DummyStoreMaker,
    ) -> Result<Self, SandboxError> {
        let key = CustodianKey::load(&settings.key_file)
            .map_err(|e| SandboxError::Config(e.to_string()))?;
        let catalog = Catalog::load(&settings.catalog_dir)
            .map_err(|e| SandboxError::Config(e.to_string()))?;
        let policy = SqlPolicy::load(&settings.policies_dir.join("sql.toml"))?;
        let disclosure_path = settings.policies_dir.join("disclosure.toml");
        let disclosure = DisclosurePolicy::load(&disclosure_path)?;
        let disclosure_text = std::fs::read_to_string(&disclosure_path)?;
        let standard = niji_catalog::standard::StandardDatasets::load(
            &settings.catalog_dir.join("standard"),
            &catalog,
        )
        .map_err(|e| SandboxError::Config(e.to_string()))?;
        let anonymisation_path = settings.policies_dir.join("anonymisation.toml");
        let anonymisation = niji_anonymise::AnonymisationPolicy::load(&anonymisation_path)
            .map_err(|e| SandboxError::Config(e.to_string()))?;
        let anonymisation_text = std::fs::read_to_string(&anonymisation_path)?;
        let limits = Limits::load(&settings.limits_file)?;
        std::fs::create_dir_all(&settings.data_dir)?;
        let anchor = settings.key_file.with_file_name("audit.anchor");
        let platform = Arc::new(
            Platform::open(&settings.database(), &anchor, &key, &settings.policies_dir).await?,
        );
        let dummy_key = Arc::new(CustodianKey::from_bytes(
            *key.derive_labelled(DUMMY_KEY_LABEL),
        ));
        Ok(Self {
            overall: Arc::new(Semaphore::new(limits.concurrent_overall)),
            settings,
            catalog: Arc::new(catalog),
            key,
            dummy_key,
            platform,
            policy,
            disclosure,
            limits,
            engine,
            runtime: RuntimeEnvBuilder::new().build_arc()?,
            running: Arc::default(),
            envs: Mutex::new(HashMap::new()),
            ledgers: Mutex::new(HashMap::new()),
            populations: tokio::sync::OnceCell::new(),
            #[cfg(feature = "bench")]
            release_checks: std::sync::atomic::AtomicBool::new(true),
            per_project: Mutex::new(HashMap::new()),
            work_lock: Mutex::new(()),
            failure_lock: Mutex::new(()),
            dummy_lock: Mutex::new(()),
            code_counts: Mutex::new(risk::CodeCounts::default()),
            make_dummy,
            standard,
            disclosure_text,
            anonymisation,
            anonymisation_text,
            dataset_builds: Mutex::new(()),
            count_lock: Mutex::new(()),
        })
    }

    /// Switches disclosure control's checks off (every real result is then held, nothing is
    /// released) or on. For niji-bench, which compares the two; not in the product binary.
    #[cfg(feature = "bench")]
    pub fn set_release_checks(&self, on: bool) {
        self.release_checks
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The platform service: users, projects, output review, the audit log.
    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    /// The catalog the environment was opened with (projects are validated against it).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Whether niji-bench switched the release checks off.
    #[cfg(feature = "bench")]
    fn release_checks_off(&self) -> bool {
        !self
            .release_checks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The product binary has no switch: the checks are always on.
    #[cfg(not(feature = "bench"))]
    fn release_checks_off(&self) -> bool {
        false
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn project_dir(&self, project: &str) -> PathBuf {
        self.settings.data_dir.join("projects").join(project)
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
        let make = self.make_dummy.clone();
        tokio::task::spawn_blocking(move || {
            make.make(&catalog, &key, &out)
                .map_err(SandboxError::Synthetic)?;
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
        // no row fails them): a store published anew means views built anew. They depend on
        // the spec too: an accepted amendment changes it in place, and the next query must see
        // only what the project is approved for now. And on the consent withdrawals: from the
        // next query on, a withdrawn person is in no view. The dummy store has no real persons.
        let withdrawals = match mode {
            Mode::Real => self.platform.withdrawal_count().await?,
            Mode::Dummy => 0,
        };
        if let Some(env) = envs.get(&cache_key)
            && env.built_from == views::store_stamp(&data_dir)
            && env.spec == *spec
            && env.withdrawals == withdrawals
        {
            return Ok(env.clone());
        }
        let withdrawals = match mode {
            Mode::Real => self.platform.withdrawals().await?,
            Mode::Dummy => niji_governance::Withdrawals::default(),
        };
        let workspace = self.project_dir(&spec.id).join(mode.as_str()).join("work");
        let env = Arc::new(
            ProjectEnv::build(
                spec,
                mode,
                &self.catalog,
                &views::StoreSource {
                    data_dir: &data_dir,
                    key,
                    withdrawals: &withdrawals,
                },
                &self.limits,
                workspace,
            )
            .await?,
        );
        if !env.removed_for_consent.is_empty() {
            let detail = serde_json::json!({
                "project": spec.id, "tables": env.removed_for_consent,
                "reason": "made before a consent withdrawal",
            });
            self.platform
                .audit()
                .append("niji", "workspace.withdrawn", &detail)
                .await?;
        }
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
}
