//! Real-data results through disclosure control: the shadow, the rules under the release ledger, and holding.

use super::*;

/// A project's release ledger and the last row of `released_sets` it has read.
#[derive(Debug, Default)]
pub(crate) struct KeptLedger {
    ledger: Ledger,
    seen: i64,
}

/// How a result is judged: automatically or with the judgement rules waived by checkers,
/// whether what it releases joins the ledger, and at least how many persons per cell where
/// the scope's spec asks for more than the policy (a condition of the project's approval, a
/// dataset's definition).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Judging {
    pub(crate) strictness: Strictness,
    pub(crate) record: bool,
    pub(crate) stricter: Option<u64>,
}

fn plan_schema(plan: &datafusion::logical_expr::LogicalPlan) -> arrow::datatypes::SchemaRef {
    outcome::nullable(plan.schema().as_arrow())
}

/// Inhabitants per municipality code, from the catalog's table with a population column (none
/// when it was not ingested: then no cell about a municipality is released).
pub(crate) async fn load_populations(
    catalog: &Catalog,
    data_dir: &Path,
) -> Result<Populations, SandboxError> {
    let store = niji_store::Store::new(data_dir);
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

impl Visiting {
    /// Runs a real-data query with disclosure control: the plan's shadow computes, in the same
    /// pass, who stands behind each cell; the rules decide what leaves. What cannot be checked
    /// or may not leave is held in the project workspace, where output checkers can see it.
    pub(crate) async fn disclose(
        &self,
        env: &ProjectEnv,
        req: &QueryRequest,
        query_id: &str,
        plan: datafusion::logical_expr::LogicalPlan,
        audit: &mut QueryAudit<'_>,
    ) -> Result<QueryOutcome, SandboxError> {
        let visible = outcome::nullable(plan.schema().as_arrow());
        let shadow = if self.release_checks_off() {
            Err(niji_disclosure::Unsupported(
                "disclosure checks are switched off".into(),
            ))
        } else {
            // A shape that may not leave is held before it runs, whatever its rows.
            self.shadow_of(env, &req.sql, &visible, true).await
        };
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
                    req.scope.key(),
                    query_id,
                    &shadow,
                    &batches,
                    Judging {
                        strictness: Strictness::Automatic,
                        record: true,
                        stricter: env.spec.min_persons,
                    },
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
                audit.differencing = suppressed
                    .iter()
                    .filter(|c| niji_disclosure::is_differencing(&c.reason))
                    .count();
                QueryOutcome::released(batch, suppressed, small_groups_withheld).with_totals(totals)
            }
        };
        audit.check_ms = ms(checking.elapsed());
        Ok(outcome)
    }

    /// Holds a query held for its shape, whether or not it runs to the end: its outcome must not
    /// tell whether it failed on the way (the failure is kept for custodians, and does not
    /// count towards the researcher's pause, since they were not told of it).
    pub(crate) async fn hold_as_shaped(
        &self,
        env: &ProjectEnv,
        req: &QueryRequest,
        query_id: &str,
        plan: datafusion::logical_expr::LogicalPlan,
        why: &str,
        audit: &mut QueryAudit<'_>,
    ) -> Result<QueryOutcome, SandboxError> {
        // Where nothing is kept for checkers, a held shape is refused before it runs.
        if !req.scope.keeps_outputs() {
            return self
                .hold(req, query_id, &plan_schema(&plan), None, why)
                .await;
        }
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

    /// The shadow of `sql` (whose checked plan has the `visible` schema) in `env`, or why its
    /// result is held whatever its rows; `bounded`: with bounds on the largest contributions,
    /// by the ceilings of the project's views where they apply (see [`niji_disclosure::prepare`]).
    ///
    /// The shadow is planned again from the SQL over the shadow views rather than rewritten
    /// from the checked plan: the checked plan's views cannot reach the person indexes,
    /// facility marks and strata columns (a researcher's plan must not), and DataFusion's own
    /// planner carries them through every projection, join and subquery above each scan.
    /// `niji_disclosure::shadow` refuses a shadow whose visible columns differ from the checked
    /// plan's (the result is then held), and a test keeps the two equal on varied queries
    /// (`benign::the_shadow_matches_the_checked_plan_column_for_column`).
    pub(crate) async fn shadow_of(
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
        let cap = self.disclosure.facility_cap();
        niji_disclosure::prepare(plan, visible, cap, bounds, &self.catalog)
    }

    /// Applies the rules to a shadow result under the project's release ledger, as `rules`
    /// says; when it says `record`
    /// and something is released, its person sets join the ledger (recorded in the platform
    /// database before the result leaves, so that a crash never forgets a release).
    pub(crate) async fn judge(
        &self,
        project: &str,
        query_id: &str,
        shadow: &niji_disclosure::Shadow,
        batches: &[RecordBatch],
        rules: Judging,
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
        let new = self
            .platform
            .released_sets()
            .released_since(project, kept.seen)
            .await?;
        if let Some((last, _)) = new.last() {
            kept.seen = *last;
            let sets = new
                .iter()
                .map(|(_, bytes)| niji_disclosure::udaf::decode_set(bytes))
                .collect::<Result<Vec<_>, _>>()?;
            kept.ledger.extend(sets);
        }
        let ledger = &mut kept.ledger;
        let Judging {
            strictness,
            record,
            stricter,
        } = rules;
        let policy = match stricter {
            Some(min) => std::borrow::Cow::Owned(self.disclosure.at_least(min)),
            None => std::borrow::Cow::Borrowed(&self.disclosure),
        };
        let mut verdict = niji_disclosure::check(
            shadow,
            batches,
            &self.catalog,
            &policy,
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
                .map(|kept| niji_disclosure::udaf::encode_set(kept.set()))
                .collect();
            if let Some(last) = self
                .platform
                .released_sets()
                .record_released(project, query_id, &encoded, kept.seen)
                .await?
            {
                kept.seen = last;
            }
        }
        Ok(verdict)
    }

    /// Inhabitants per municipality, read once from the real store.
    pub(crate) async fn populations(&self) -> Result<&Populations, SandboxError> {
        self.populations
            .get_or_try_init(|| load_populations(&self.catalog, &self.settings.data_dir))
            .await
    }
}
