//! Building a project's views: each approved table's scan, its period, cohort and parent
//! filters, its pseudonyms and record keys, and what disclosure control reads beside it
//! (ceilings, strata).

use super::*;

/// The pieces a view is built from, shared by all views of one project.
pub(super) struct Builder<'a> {
    pub(super) spec: &'a ProjectSpec,
    pub(super) catalog: &'a Catalog,
    pub(super) store: Store,
    pub(super) internal: SessionContext,
    pub(super) pseudonyms: BTreeMap<String, ScalarUDF>,
    pub(super) record_key: ScalarUDF,
    pub(super) cohort: Option<ScalarUDF>,
    /// Consent withdrawals to leave out, when there are any.
    pub(super) withdrawn: Option<Withdrawn>,
    /// Row filter per table: each is asked for by the table's view, its shadow view and the
    /// views of its detail tables, and deciding it may scan the table.
    pub(super) row_filters: std::sync::Mutex<BTreeMap<String, Option<Expr>>>,
}

impl Builder<'_> {
    pub(super) async fn scan(&self, db: &str, table: &str) -> Result<LogicalPlan, SandboxError> {
        scan_stored(&self.internal, &self.store, db, table).await
    }

    /// Whether the details in `db.table` carry the person and facility of the parent now in
    /// the store (a parent published anew since is joined instead).
    pub(super) fn carry_parent(
        &self,
        db: &str,
        table: &str,
        parent: &str,
    ) -> Result<bool, SandboxError> {
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
    pub(super) fn add_ceilings(
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
    pub(super) fn counts_stored_persons(&self, db: &str, name: &str) -> Result<bool, SandboxError> {
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
    pub(super) async fn strata_of(
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

    pub(super) fn manifest(&self, db: &str, table: &str) -> Result<Option<Manifest>, SandboxError> {
        self.store
            .manifest(db, table)
            .map_err(|e| SandboxError::Unavailable(format!("{db}.{table}: {e}")))
    }

    pub(super) fn table(&self, db: &str, name: &str) -> Result<&Table, SandboxError> {
        self.catalog
            .table(db, name)
            .ok_or_else(|| SandboxError::Unavailable(format!("{db}.{name} is not in the catalog")))
    }

    /// Row filters of a person-level table: the approved period, unless no stored row falls
    /// outside it; the cohort; the consent withdrawals, unless no stored row is withdrawn.
    pub(super) async fn row_filter(
        &self,
        db: &str,
        table: &Table,
    ) -> Result<Option<Expr>, SandboxError> {
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
        if let Some(keep) = self.withdrawn.as_ref().and_then(|w| w.keep(table))
            && self.any_row_fails(db, table, &keep).await?
        {
            parts.push(keep);
        }
        let filter = conjunction(parts);
        self.memo().insert(key, filter.clone());
        Ok(filter)
    }

    pub(super) fn memo(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<Expr>>> {
        // A poisoned memo only lost an entry in progress.
        self.row_filters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether some stored row of the table does not pass `filter`. A filter every row passes
    /// is left out of the view: it would cost a comparison per row and, for the table's detail
    /// tables, a join.
    pub(super) async fn any_row_fails(
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
    pub(super) fn period_filter(&self, table: &Table) -> Result<Option<Expr>, SandboxError> {
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
    pub(super) async fn filtered(
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
    pub(super) async fn view(
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
    pub(super) async fn cohort_members(&self) -> Result<Option<Vec<u32>>, SandboxError> {
        let Some(cohort) = &self.spec.cohort else {
            return Ok(None);
        };
        let mut parts = cohort.source.splitn(3, '.');
        let (db, name, column) = match (parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(t), Some(c)) => (d, t, c),
            _ => return Err(SandboxError::Unavailable("cohort source".into())),
        };
        let matches = conjunction_or(
            cohort
                .codes
                .iter()
                .map(|code| col(column).like(lit(format!("{}%", escape_like(code))))),
        );
        let persons = persons_matching(
            &self.internal,
            &self.store,
            self.catalog,
            db,
            self.table(db, name)?,
            matches,
            |t| self.period_filter(t),
        )
        .await?;
        Ok(Some(persons))
    }
}
