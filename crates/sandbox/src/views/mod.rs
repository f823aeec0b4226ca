//! A project's catalog: one view per approved table (approved columns, approved rows, persons
//! as the project pseudonym) and the project's workspace, in a DataFusion context built for
//! that project alone. Views are opaque table providers: a researcher's plan shows a scan of
//! `ndb.receipts`, never the Parquet files, the person index or the functions behind it.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, JoinType, Result as DfResult, ScalarValue};
use datafusion::logical_expr::TableType;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, TableProviderFilterPushDown, col, lit,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use niji_catalog::{Catalog, ColumnType, DisclosureRole, Role, Table};
use niji_governance::{PSEUDONYM_COLUMN, ProjectSpec};
use niji_pseudo::{CivilDate, CustodianKey, ProjectPseudonyms};
use niji_store::Registry;
use niji_store::parents::{PARENT_FACILITY, PARENT_PERIOD, PARENT_PERSON};
use niji_store::{Manifest, Store};

use crate::udf::{PersonSetUdf, PseudonymUdf, RecordKeyUdf};
use crate::{Limits, Mode, SandboxError};

/// Catalog name of every project context; schemas are database names and `work`.
pub const CATALOG: &str = "niji";
pub const WORKSPACE: &str = "work";

mod builder;
mod filters;
mod persons;
mod provider;
mod withdrawn;

use builder::Builder;
pub(crate) use filters::escape_like;
use filters::*;
pub(crate) use persons::{has_rows, persons_matching};
use persons::{person_indexes, scan_stored};
pub use provider::ProjectView;
use withdrawn::Withdrawn;
pub use withdrawn::{RegistrationRows, registration_rows};

/// The project's own context over one store (real or dummy).
pub struct ProjectEnv {
    pub spec: ProjectSpec,
    pub mode: Mode,
    pub ctx: SessionContext,
    /// The same catalog over views with hidden columns, for disclosure control's rewrite.
    pub shadow_ctx: SessionContext,
    /// `db.table` of every approved view.
    pub views: BTreeSet<String>,
    workspace_dir: PathBuf,
    work_schema: Arc<MemorySchemaProvider>,
    /// The store as it was when the views were built (they depend on its contents).
    pub built_from: StoreStamp,
    /// How many consent withdrawals the views leave out (they only grow).
    pub withdrawals: i64,
    /// Real-data work tables deleted while building: made before a consent withdrawal.
    pub removed_for_consent: Vec<String>,
    /// The ceilings of the approved views' columns, from the store's manifests: only of views
    /// whose rows are stored rows, each once, and whose persons are those the ceilings were
    /// summed by; the strata of views whose rows are all of a table's stored rows; and the
    /// pseudonyms of person-level views.
    pub bounds: niji_disclosure::Bounds,
}

/// Identity of a store's published state: each table manifest and registry file, with its
/// modification time and size. Ingest replaces them on every publish.
pub type StoreStamp = Vec<(PathBuf, Option<std::time::SystemTime>, u64)>;

pub fn store_stamp(data_dir: &Path) -> StoreStamp {
    let root = data_dir.join("store");
    let stat = |path: PathBuf| {
        let meta = std::fs::metadata(&path).ok();
        let modified = meta.as_ref().and_then(|m| m.modified().ok());
        let len = meta.map_or(0, |m| m.len());
        (path, modified, len)
    };
    let entries = |dir: &Path| -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        paths
    };
    let mut stamp = Vec::new();
    for db in entries(&root) {
        for entry in entries(&db) {
            if entry.is_dir() {
                stamp.push(stat(entry.join("manifest.json")));
            } else {
                stamp.push(stat(entry));
            }
        }
    }
    stamp
}

/// What a project's views are built over: a store (the real one, or the dummy one), the key
/// it was pseudonymised with (the custodian key, or the dummy store's), and the consent
/// withdrawals to leave out (none in the dummy store).
#[derive(Debug, Clone, Copy)]
pub struct StoreSource<'a> {
    pub data_dir: &'a Path,
    pub key: &'a CustodianKey,
    pub withdrawals: &'a niji_governance::Withdrawals,
}

impl std::fmt::Debug for ProjectEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectEnv")
            .field("project", &self.spec.id)
            .field("mode", &self.mode)
            .field("views", &self.views)
            .finish_non_exhaustive()
    }
}

/// Session settings of every project context: no recursive CTEs (a runaway by construction),
/// no URL tables (off by default and never switched on), information_schema over the project's
/// own catalog only.
pub fn session_config(limits: &Limits) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG, WORKSPACE)
        .with_create_default_catalog_and_schema(true);
    if limits.target_partitions > 0 {
        config = config.with_target_partitions(limits.target_partitions);
    }
    config.options_mut().execution.enable_recursive_ctes = false;
    config
}

impl ProjectEnv {
    /// Builds the context of `spec` over `source`: the real store or the dummy one.
    pub async fn build(
        spec: &ProjectSpec,
        mode: Mode,
        catalog: &Catalog,
        source: &StoreSource<'_>,
        limits: &Limits,
        workspace_dir: PathBuf,
    ) -> Result<Self, SandboxError> {
        let StoreSource {
            data_dir,
            key,
            withdrawals,
        } = *source;
        let built_from = store_stamp(data_dir);
        let store = Store::new(data_dir);
        let registry = Registry::load(&store.registry_dir(), &key.version())
            .map_err(|e| SandboxError::Unavailable(format!("person registry: {e}")))?;
        let ids = registry.ids();
        let label = format!("{}/{}", spec.id, mode.as_str());
        let mut pseudonyms = BTreeMap::new();
        let mut strict_pseudonyms = BTreeMap::new();
        for db in spec.databases() {
            let group = spec.linkage_group(db);
            if pseudonyms.contains_key(&group) {
                continue;
            }
            let dictionary = ProjectPseudonyms::build(key, &spec.id, &group, ids)
                .map_err(|e| SandboxError::Unavailable(e.to_string()))?;
            let dictionary = Arc::new(dictionary);
            let udf_label = format!("{label}/{group}");
            strict_pseudonyms.insert(
                group.clone(),
                PseudonymUdf::strict_udf(&udf_label, dictionary.clone()),
            );
            pseudonyms.insert(group, PseudonymUdf::new_udf(udf_label, dictionary));
        }
        let record_key_bytes =
            key.derive_labelled(format!("niji/project-record-key/v1\u{1f}{}", spec.id).as_bytes());
        let mut rk = [0u8; 16];
        rk.copy_from_slice(&record_key_bytes[..16]);
        let internal = SessionContext::new_with_config(session_config(limits));
        let mut builder = Builder {
            spec,
            catalog,
            store,
            internal,
            pseudonyms,
            record_key: RecordKeyUdf::new_udf(label.clone(), rk),
            cohort: None,
            withdrawn: None,
            row_filters: std::sync::Mutex::new(BTreeMap::new()),
        };
        if let Some(members) = builder.cohort_members().await? {
            tracing::info!(project = %spec.id, mode = mode.as_str(), persons = members.len(), "cohort");
            builder.cohort = Some(PersonSetUdf::cohort(
                &label,
                Arc::new(PersonSetUdf::bitmap(members)),
            ));
        }
        if !withdrawals.research_ids.is_empty() {
            let found = registration_rows(
                &builder.internal,
                &builder.store,
                catalog,
                None,
                &withdrawals.research_ids,
            )
            .await?;
            tracing::info!(project = %spec.id, mode = mode.as_str(), withdrawals = withdrawals.count(), persons = found.persons.len(), "consent withdrawals");
            builder.withdrawn = Some(Withdrawn::new(
                &label,
                &withdrawals.research_ids,
                found.persons,
            ));
        }

        let mut bounds = niji_disclosure::Bounds::default();
        for approved in &spec.tables {
            let (db, name) = approved.parts()?;
            builder.add_ceilings(db, name, &approved.columns, &mut bounds.ceilings)?;
            if let Some(strata) = builder.strata_of(db, name).await? {
                bounds.strata.insert(format!("{db}.{name}"), strata);
            }
            if builder.table(db, name)?.is_person_level()
                && let Some(udf) = strict_pseudonyms.get(&spec.linkage_group(db))
            {
                bounds
                    .pseudonyms
                    .insert(format!("{db}.{name}"), udf.clone());
            }
        }
        let work_schema = Arc::new(MemorySchemaProvider::new());
        let mut views = BTreeSet::new();
        let ctx = SessionContext::new_with_config(session_config(limits));
        let shadow_ctx = SessionContext::new_with_config(session_config(limits));
        for (context, shadow) in [(&ctx, false), (&shadow_ctx, true)] {
            // No expression of a researcher's may fail on a value: an error would be an oracle.
            niji_disclosure::total::install(context);
            let root = context
                .catalog(CATALOG)
                .ok_or_else(|| SandboxError::Unavailable("project catalog".into()))?;
            let mut schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
            for approved in &spec.tables {
                let (db, name) = approved.parts()?;
                let view = builder.view(db, name, &approved.columns, shadow).await?;
                let schema = schemas
                    .entry(db.to_string())
                    .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
                schema.register_table(name.to_string(), Arc::new(view))?;
                if !shadow {
                    views.insert(format!("{db}.{name}"));
                }
            }
            for (db, schema) in schemas {
                root.register_schema(&db, schema)?;
            }
            root.register_schema(WORKSPACE, work_schema.clone())?;
        }
        let mut env = Self {
            spec: spec.clone(),
            mode,
            ctx,
            shadow_ctx,
            views,
            workspace_dir,
            work_schema,
            built_from,
            withdrawals: withdrawals.count(),
            removed_for_consent: Vec::new(),
            bounds,
        };
        env.load_workspace().await?;
        Ok(env)
    }

    fn work_file(&self, name: &str) -> PathBuf {
        self.workspace_dir.join(format!("{name}.parquet"))
    }

    /// Where the withdrawal count a work table was made under is kept.
    fn work_withdrawals_file(&self, name: &str) -> PathBuf {
        self.workspace_dir.join(format!("{name}.withdrawals"))
    }

    /// The work tables, but those made on real data before a consent withdrawal: they may
    /// hold the withdrawn person, and are deleted (`removed_for_consent` names them).
    async fn load_workspace(&mut self) -> Result<(), SandboxError> {
        let Ok(entries) = std::fs::read_dir(&self.workspace_dir) else {
            return Ok(());
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".parquet").map(str::to_string)
            })
            .collect();
        names.sort();
        for name in names {
            let made_under = std::fs::read_to_string(self.work_withdrawals_file(&name))
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(0);
            if self.mode == Mode::Real && made_under < self.withdrawals {
                self.drop_work(&name)?;
                self.removed_for_consent.push(name);
                continue;
            }
            self.register_work(&name).await?;
        }
        Ok(())
    }

    /// Writes `work.<name>` atomically under the project and makes it visible.
    pub async fn save_work(
        &self,
        name: &str,
        schema: &SchemaRef,
        batches: &[arrow::array::RecordBatch],
    ) -> Result<(), SandboxError> {
        crate::outcome::write_parquet(&self.workspace_dir, name, schema, batches)?;
        // Written after the table: a crash between leaves a table without a count, taken as
        // made before every withdrawal (deleted at the next, never kept wrongly).
        std::fs::write(
            self.work_withdrawals_file(name),
            self.withdrawals.to_string(),
        )?;
        self.register_work(name).await
    }

    /// Makes `work.<name>` (already written) visible.
    async fn register_work(&self, name: &str) -> Result<(), SandboxError> {
        let path = self.work_file(name).to_string_lossy().into_owned();
        let plan = self
            .ctx
            .read_parquet(path, ParquetReadOptions::default())
            .await?
            .into_unoptimized_plan();
        let exprs: Vec<Expr> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| col(Column::new_unqualified(f.name())).alias(f.name()))
            .collect();
        let plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        let view = ProjectView::new(format!("{WORKSPACE}.{name}"), plan, TableType::Base);
        self.work_schema.deregister_table(name)?;
        self.work_schema
            .register_table(name.to_string(), Arc::new(view))?;
        Ok(())
    }

    pub fn has_work_table(&self, name: &str) -> bool {
        self.work_schema.table_exist(name)
    }

    /// Removes `work.<name>` from the catalog and disk; false when it did not exist.
    pub fn drop_work(&self, name: &str) -> Result<bool, SandboxError> {
        let existed = self.work_schema.deregister_table(name)?.is_some();
        if let Err(e) = std::fs::remove_file(self.work_withdrawals_file(name))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(SandboxError::Io(e));
        }
        match std::fs::remove_file(self.work_file(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(existed),
            Err(e) => Err(SandboxError::Io(e)),
        }
    }

    /// Whether `provider` is one niji built for a project (a view or a workspace table).
    pub fn is_project_table(provider: &dyn TableProvider) -> bool {
        let any: &dyn Any = provider;
        any.is::<ProjectView>()
    }
}
