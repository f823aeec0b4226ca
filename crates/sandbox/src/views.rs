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

use crate::udf::{CohortUdf, PseudonymUdf, RecordKeyUdf};
use crate::{Limits, Mode, SandboxError};

/// Catalog name of every project context; schemas are database names and `work`.
pub const CATALOG: &str = "niji";
pub const WORKSPACE: &str = "work";

/// An approved table or a workspace table as the project sees it.
#[derive(Debug)]
pub struct ProjectView {
    pub name: String,
    schema: SchemaRef,
    plan: LogicalPlan,
    kind: TableType,
}

impl ProjectView {
    /// `plan` must output unqualified columns (the view's schema).
    fn new(name: String, plan: LogicalPlan, kind: TableType) -> Self {
        let schema = Arc::new(plan.schema().as_arrow().clone());
        Self {
            name,
            schema,
            plan,
            kind,
        }
    }
}

fn unqualified(expr: Expr) -> DfResult<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    expr.transform(|e| {
        Ok(match e {
            Expr::Column(c) => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

#[async_trait]
impl TableProvider for ProjectView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.kind
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut builder = LogicalPlanBuilder::from(self.plan.clone());
        let filters = filters
            .iter()
            .cloned()
            .map(unqualified)
            .collect::<DfResult<Vec<_>>>()?;
        if let Some(predicate) = conjunction(filters) {
            builder = builder.filter(predicate)?;
        }
        if let Some(indexes) = projection {
            builder =
                builder.project(indexes.iter().map(|&i| {
                    Expr::Column(Column::new_unqualified(self.schema.field(i).name()))
                }))?;
        }
        if let Some(n) = limit {
            builder = builder.limit(0, Some(n))?;
        }
        state.create_physical_plan(&builder.build()?).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters on view columns are applied inside the view's own plan (so they reach the
        // Parquet scan), exactly as written.
        Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
    }
}

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

impl std::fmt::Debug for ProjectEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectEnv")
            .field("project", &self.spec.id)
            .field("mode", &self.mode)
            .field("views", &self.views)
            .finish_non_exhaustive()
    }
}

/// The pieces a view is built from, shared by all views of one project.
struct Builder<'a> {
    spec: &'a ProjectSpec,
    catalog: &'a Catalog,
    store: Store,
    internal: SessionContext,
    pseudonyms: BTreeMap<String, ScalarUDF>,
    record_key: ScalarUDF,
    cohort: Option<ScalarUDF>,
    /// Row filter per table: each is asked for by the table's view, its shadow view and the
    /// views of its detail tables, and deciding it may scan the table.
    row_filters: std::sync::Mutex<BTreeMap<String, Option<Expr>>>,
}

fn fiscal_year(yyyymm: i32) -> i32 {
    let (y, m) = (yyyymm / 100, yyyymm % 100);
    if m >= 4 { y } else { y - 1 }
}

fn month_start(yyyymm: i32) -> DfResult<i32> {
    let d = CivilDate::new(yyyymm / 100, (yyyymm % 100) as u32, 1)
        .map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))?;
    Ok(d.days_since_epoch())
}

impl Builder<'_> {
    async fn scan(&self, db: &str, table: &str) -> Result<LogicalPlan, SandboxError> {
        let dir = self.store.table_dir(db, table);
        if self.store.manifest(db, table).ok().flatten().is_none() {
            // Fail closed: an approved table that was never ingested is not silently empty.
            return Err(SandboxError::Unavailable(format!(
                "{db}.{table} is approved but not in the store"
            )));
        }
        let path = dir.to_string_lossy().into_owned();
        let df = self
            .internal
            .read_parquet(path, ParquetReadOptions::default())
            .await?;
        Ok(df.into_unoptimized_plan())
    }

    /// Whether the details in `db.table` carry the person and facility of the parent now in
    /// the store (a parent published anew since is joined instead).
    fn carry_parent(&self, db: &str, table: &str, parent: &str) -> Result<bool, SandboxError> {
        let (Some(details), Some(parent)) = (self.manifest(db, table)?, self.manifest(db, parent)?)
        else {
            return Ok(false);
        };
        Ok(details.parent_digest.as_deref() == Some(parent.content_digest.as_str()))
    }

    /// The ceilings of `columns` of `db.name`'s view, where they apply: a person-level table,
    /// whose view only filters its rows, or details carrying their parent's person (a view
    /// joining the parent takes its persons from the parent now stored, not from those the
    /// ceilings were summed by).
    fn add_ceilings(
        &self,
        db: &str,
        name: &str,
        columns: &[String],
        out: &mut niji_disclosure::Ceilings,
    ) -> Result<(), SandboxError> {
        if !self.counts_stored_persons(db, name)? {
            return Ok(());
        }
        let Some(manifest) = self.manifest(db, name)? else {
            return Ok(());
        };
        for column in columns {
            if let Some(ceiling) = manifest.ceilings.get(column) {
                let source = niji_disclosure::Source {
                    table: format!("{db}.{name}"),
                    column: column.clone(),
                };
                out.insert(source, ceiling.clone());
            }
        }
        Ok(())
    }

    /// Whether the shadow view of `db.name` counts the persons ingest stored with its rows: a
    /// person-level table's own, or details carrying their parent's (a view joining the parent
    /// takes its persons from the parent now stored).
    fn counts_stored_persons(&self, db: &str, name: &str) -> Result<bool, SandboxError> {
        let table = self.table(db, name)?;
        Ok(match &table.parent {
            Some(link) => self.carry_parent(db, name, &link.table)?,
            None => table.is_person_level(),
        })
    }

    /// The strata of `db.name`, where its view's rows are all of its stored rows, with the
    /// persons and facilities ingest gathered its strata by: a person-level table its view does
    /// not filter, or details carrying their parent's person whose parent's view does not
    /// filter. A strata file that does not match its manifest is not used (the exact check
    /// serves).
    async fn strata_of(
        &self,
        db: &str,
        name: &str,
    ) -> Result<Option<Arc<niji_store::Strata>>, SandboxError> {
        let table = self.table(db, name)?;
        if !self.counts_stored_persons(db, name)? {
            return Ok(None);
        }
        // The filters the view applies (see `view`): a person-level table's own, and details'
        // parent's.
        let mut filtered_by = Vec::new();
        if table.is_person_level() {
            filtered_by.push(table);
        }
        if let Some(link) = &table.parent {
            filtered_by.push(self.table(db, &link.table)?);
        }
        for t in filtered_by {
            if self.row_filter(db, t).await?.is_some() {
                return Ok(None);
            }
        }
        match self.store.strata(db, name) {
            Ok(strata) => Ok(strata.map(Arc::new)),
            Err(e) => {
                tracing::warn!(db, table = name, error = %e, "strata not used");
                Ok(None)
            }
        }
    }

    fn manifest(&self, db: &str, table: &str) -> Result<Option<Manifest>, SandboxError> {
        self.store
            .manifest(db, table)
            .map_err(|e| SandboxError::Unavailable(format!("{db}.{table}: {e}")))
    }

    fn table(&self, db: &str, name: &str) -> Result<&Table, SandboxError> {
        self.catalog
            .table(db, name)
            .ok_or_else(|| SandboxError::Unavailable(format!("{db}.{name} is not in the catalog")))
    }

    /// Row filters of a person-level table: the approved period, unless no stored row falls
    /// outside it, and the cohort.
    async fn row_filter(&self, db: &str, table: &Table) -> Result<Option<Expr>, SandboxError> {
        let key = format!("{db}.{}", table.name);
        if let Some(known) = self.memo().get(&key) {
            return Ok(known.clone());
        }
        let mut parts = Vec::new();
        if let Some(period) = self.period_filter(table)?
            && self.any_row_fails(db, table, &period).await?
        {
            parts.push(period);
        }
        if let Some(cohort) = &self.cohort {
            parts.push(cohort.call(vec![col("person_idx")]));
        }
        let filter = conjunction(parts);
        self.memo().insert(key, filter.clone());
        Ok(filter)
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<Expr>>> {
        // A poisoned memo only lost an entry in progress.
        self.row_filters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether some stored row of the table does not pass `filter`. A filter every row passes
    /// is left out of the view: it would cost a comparison per row and, for the table's detail
    /// tables, a join.
    async fn any_row_fails(
        &self,
        db: &str,
        table: &Table,
        filter: &Expr,
    ) -> Result<bool, SandboxError> {
        let plan = LogicalPlanBuilder::from(self.scan(db, &table.name).await?)
            .filter(filter.clone().is_not_true())?
            .limit(0, Some(1))?
            .build()?;
        let batches = self
            .internal
            .execute_logical_plan(plan)
            .await?
            .collect()
            .await?;
        Ok(batches.iter().any(|b| b.num_rows() > 0))
    }

    /// The approved data period on the table's period column.
    fn period_filter(&self, table: &Table) -> Result<Option<Expr>, SandboxError> {
        let mut parts = Vec::new();
        if let Some(period) = &self.spec.period {
            let (from, to) = period.months()?;
            let column = table.period_column.as_deref().ok_or_else(|| {
                SandboxError::Unavailable(format!("{} has no period column", table.name))
            })?;
            let c = table.column(column).map(|c| c.ty);
            let between = match c {
                Some(ColumnType::YearMonth) => col(column).between(lit(from), lit(to)),
                Some(ColumnType::Int32) => {
                    col(column).between(lit(fiscal_year(from)), lit(fiscal_year(to)))
                }
                Some(ColumnType::Date) => {
                    let next = if to % 100 == 12 {
                        (to / 100 + 1) * 100 + 1
                    } else {
                        to + 1
                    };
                    let start = month_start(from)?;
                    let end = month_start(next)? - 1;
                    col(column).between(
                        lit(ScalarValue::Date32(Some(start))),
                        lit(ScalarValue::Date32(Some(end))),
                    )
                }
                _ => {
                    return Err(SandboxError::Unavailable(format!(
                        "period column {column} of {} is not a date",
                        table.name
                    )));
                }
            };
            parts.push(between);
        }
        Ok(conjunction(parts))
    }

    /// The scan of a table with `filter` applied.
    async fn filtered(
        &self,
        db: &str,
        table: &Table,
        filter: Option<Expr>,
    ) -> Result<LogicalPlan, SandboxError> {
        let mut b = LogicalPlanBuilder::from(self.scan(db, &table.name).await?);
        if let Some(f) = filter {
            b = b.filter(f)?;
        }
        Ok(b.build()?)
    }

    /// The view of an approved table; `shadow` adds the hidden columns disclosure control
    /// counts with (person index and facility), which only niji's own rewrite reads.
    async fn view(
        &self,
        db: &str,
        name: &str,
        columns: &[String],
        shadow: bool,
    ) -> Result<ProjectView, SandboxError> {
        let table = self.table(db, name)?;
        let filter = if table.is_person_level() {
            self.row_filter(db, table).await?
        } else {
            None
        };
        let mut rows = self.filtered(db, table, filter).await?;
        let mut carried = false;
        if let Some(link) = &table.parent {
            let parent = self.table(db, &link.table)?;
            let filter = self.row_filter(db, parent).await?;
            // Details follow their parent record: only those of approved parent rows. The
            // shadow view also needs the parent's person and facility, which disclosure control
            // counts (a detail without a parent keeps its row, with no person). Ingest stores
            // them, and the parent's period, on the details where they match the parent in the
            // store: the parent's filter then applies to the details themselves. Otherwise the
            // parent is joined here.
            carried = self.carry_parent(db, name, &link.table)?;
            let on_details = match &filter {
                Some(f) if carried => on_carried(f, parent, rows.schema()),
                _ => None,
            };
            if let Some(f) = on_details {
                rows = LogicalPlanBuilder::from(rows).filter(f)?.build()?;
            } else {
                let join_persons = shadow && !carried;
                let join = match (&filter, join_persons) {
                    (Some(_), false) => Some(JoinType::LeftSemi),
                    (Some(_), true) => Some(JoinType::Inner),
                    (None, true) => Some(JoinType::Left),
                    (None, false) => None,
                };
                if let Some(join) = join {
                    let parent_rows = self.filtered(db, parent, filter).await?;
                    let mut keys = vec![col("record_key").alias(PARENT_KEY)];
                    if join_persons {
                        keys.push(col("person_idx").alias(niji_disclosure::PERSON));
                        if let Some(f) = facility_of(parent, parent_rows.schema()) {
                            keys.push(f.alias(niji_disclosure::FACILITY));
                        }
                    }
                    let keys = LogicalPlanBuilder::from(parent_rows)
                        .project(keys)?
                        .build()?;
                    rows = LogicalPlanBuilder::from(rows)
                        .join(
                            keys,
                            join,
                            (
                                vec![Column::new_unqualified(link.key.as_str())],
                                vec![Column::new_unqualified(PARENT_KEY)],
                            ),
                            None,
                        )?
                        .build()?;
                }
            }
        }
        let parent_key = table.parent.as_ref().map(|l| l.key.as_str());
        let mut exprs = Vec::with_capacity(columns.len() + 1);
        for name in columns {
            let c = table.column(name).ok_or_else(|| {
                SandboxError::Unavailable(format!("{db}.{} has no column {name}", table.name))
            })?;
            let source = Expr::Column(Column::new_unqualified(name.as_str()));
            let e = if c.role == Some(Role::RecordKey) || Some(name.as_str()) == parent_key {
                self.record_key.call(vec![source])
            } else {
                source
            };
            exprs.push(e.alias(name.as_str()));
        }
        if table.is_person_level() {
            let group = self.spec.linkage_group(db);
            let udf = self.pseudonyms.get(&group).ok_or_else(|| {
                SandboxError::Unavailable(format!("no pseudonyms for linkage group {group}"))
            })?;
            exprs.push(udf.call(vec![col("person_idx")]).alias(PSEUDONYM_COLUMN));
        }
        if shadow {
            if table.is_person_level() {
                exprs.push(col("person_idx").alias(niji_disclosure::PERSON));
                if let Some(f) = facility_of(table, rows.schema()) {
                    exprs.push(f.alias(niji_disclosure::FACILITY));
                }
            } else if carried {
                exprs.push(col(PARENT_PERSON).alias(niji_disclosure::PERSON));
                if rows
                    .schema()
                    .has_column_with_unqualified_name(PARENT_FACILITY)
                {
                    exprs.push(col(PARENT_FACILITY).alias(niji_disclosure::FACILITY));
                }
            } else if table.parent.is_some() {
                exprs.push(col(niji_disclosure::PERSON));
                if rows
                    .schema()
                    .has_column_with_unqualified_name(niji_disclosure::FACILITY)
                {
                    exprs.push(col(niji_disclosure::FACILITY));
                }
            }
        }
        let plan = LogicalPlanBuilder::from(rows).project(exprs)?.build()?;
        Ok(ProjectView::new(
            format!("{db}.{name}"),
            plan,
            TableType::View,
        ))
    }

    /// Person indexes of the cohort: persons with an approved code in the source column within
    /// the period (details are matched through their parent record's person).
    async fn cohort_members(&self) -> Result<Option<Vec<u32>>, SandboxError> {
        let Some(cohort) = &self.spec.cohort else {
            return Ok(None);
        };
        let mut parts = cohort.source.splitn(3, '.');
        let (db, name, column) = match (parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(t), Some(c)) => (d, t, c),
            _ => return Err(SandboxError::Unavailable("cohort source".into())),
        };
        let table = self.table(db, name)?;
        let matches = conjunction_or(
            cohort
                .codes
                .iter()
                .map(|code| col(column).like(lit(format!("{}%", escape_like(code))))),
        );
        let persons = if let Some(link) = &table.parent {
            let parent = self.table(db, &link.table)?;
            let details = LogicalPlanBuilder::from(self.scan(db, name).await?)
                .filter(matches)?
                .project(vec![col(link.key.as_str())])?
                .alias("detail")?
                .build()?;
            let mut parent_rows = LogicalPlanBuilder::from(self.scan(db, &parent.name).await?);
            if let Some(f) = self.period_filter(parent)? {
                parent_rows = parent_rows.filter(f)?;
            }
            parent_rows
                .alias("parent")?
                .join(
                    details,
                    JoinType::LeftSemi,
                    (
                        vec![Column::new(Some("parent"), "record_key")],
                        vec![Column::new(Some("detail"), link.key.as_str())],
                    ),
                    None,
                )?
                .build()?
        } else {
            let mut b = LogicalPlanBuilder::from(self.scan(db, name).await?).filter(matches)?;
            if let Some(f) = self.period_filter(table)? {
                b = b.filter(f)?;
            }
            b.build()?
        };
        let distinct = LogicalPlanBuilder::from(persons)
            .filter(col("person_idx").is_not_null())?
            .project(vec![col("person_idx")])?
            .distinct()?
            .build()?;
        let batches = self
            .internal
            .execute_logical_plan(distinct)
            .await?
            .collect()
            .await?;
        let mut out = Vec::new();
        for b in &batches {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::UInt32Array>()
                .ok_or_else(|| SandboxError::Unavailable("person index is not UInt32".into()))?;
            out.extend(a.iter().flatten());
        }
        Ok(Some(out))
    }
}

/// The joined parent's record key in a detail table's view plan.
const PARENT_KEY: &str = "__niji_parent_key";

/// A parent's row filter as a filter on its details' carried columns; None where it reads a
/// column the details do not carry (the parent is then joined).
fn on_carried(filter: &Expr, parent: &Table, details: &DFSchemaRef) -> Option<Expr> {
    let mut followed = true;
    let rewritten = filter
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) => {
                    let carried = if Some(c.name.as_str()) == parent.period_column.as_deref() {
                        PARENT_PERIOD
                    } else if c.name == "person_idx" {
                        PARENT_PERSON
                    } else {
                        ""
                    };
                    if carried.is_empty() || !details.has_column_with_unqualified_name(carried) {
                        followed = false;
                        Transformed::no(Expr::Column(c))
                    } else {
                        Transformed::yes(col(carried))
                    }
                }
                other => Transformed::no(other),
            })
        })
        .ok()?
        .data;
    followed.then_some(rewritten)
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn conjunction_or(exprs: impl Iterator<Item = Expr>) -> Expr {
    exprs.reduce(Expr::or).unwrap_or_else(|| lit(false))
}

/// What disclosure control counts a row's facility by: its stored mark, or, in a store
/// ingested before marks were, its code.
fn facility_of(table: &Table, stored: &datafusion::common::DFSchema) -> Option<Expr> {
    let code = table.column_for(DisclosureRole::Facility)?;
    Some(
        if stored.has_column_with_unqualified_name(niji_store::FACILITY_MARK_COLUMN) {
            col(niji_store::FACILITY_MARK_COLUMN)
        } else {
            col(code.name.as_str())
        },
    )
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
    /// Builds the context of `spec` over the store in `data_dir` (the real store, or the dummy
    /// one), keyed by `key` (the custodian key, or the dummy store's key).
    pub async fn build(
        spec: &ProjectSpec,
        mode: Mode,
        catalog: &Catalog,
        data_dir: &Path,
        key: &CustodianKey,
        limits: &Limits,
        workspace_dir: PathBuf,
    ) -> Result<Self, SandboxError> {
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
            row_filters: std::sync::Mutex::new(BTreeMap::new()),
        };
        if let Some(members) = builder.cohort_members().await? {
            tracing::info!(project = %spec.id, mode = mode.as_str(), persons = members.len(), "cohort");
            builder.cohort = Some(CohortUdf::new_udf(
                label.clone(),
                Arc::new(CohortUdf::bitmap(members)),
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
        let env = Self {
            spec: spec.clone(),
            mode,
            ctx,
            shadow_ctx,
            views,
            workspace_dir,
            work_schema,
            built_from,
            bounds,
        };
        env.load_workspace().await?;
        Ok(env)
    }

    fn work_file(&self, name: &str) -> PathBuf {
        self.workspace_dir.join(format!("{name}.parquet"))
    }

    async fn load_workspace(&self) -> Result<(), SandboxError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::DFSchema;

    fn receipts() -> Table {
        // Read at run time: a test binary reused from another checkout must find this one's files.
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run under cargo");
        let dir = Path::new(&manifest).join("../../catalog");
        let catalog = Catalog::load(&dir).expect("catalog");
        catalog.table("ndb", "receipts").expect("receipts").clone()
    }

    fn details(carried: &[&str]) -> DFSchemaRef {
        let mut fields = vec![Field::new("receipt_key", DataType::Utf8, true)];
        fields.extend(
            carried
                .iter()
                .map(|c| Field::new(*c, DataType::Int32, true)),
        );
        Arc::new(DFSchema::try_from(Schema::new(fields)).expect("schema"))
    }

    #[test]
    fn a_parents_filter_moves_onto_its_details_only_where_every_column_is_carried() {
        let parent = receipts();
        let period = col("claim_ym").between(lit(202201), lit(202206));
        let cohort = col("person_idx").gt(lit(3u32));
        let both = period.and(cohort.clone());
        let carried = details(&[PARENT_PERIOD, PARENT_PERSON]);
        assert_eq!(
            on_carried(&both, &parent, &carried),
            Some(
                col(PARENT_PERIOD)
                    .between(lit(202201), lit(202206))
                    .and(col(PARENT_PERSON).gt(lit(3u32)))
            )
        );
        // Details stored before the period was carried: the parent is joined.
        assert_eq!(on_carried(&both, &parent, &details(&[PARENT_PERSON])), None);
        assert!(on_carried(&cohort, &parent, &details(&[PARENT_PERSON])).is_some());
        // A column of the parent that no detail carries.
        let other = col("prefecture").eq(lit(13));
        assert_eq!(on_carried(&other, &parent, &carried), None);
    }
}
