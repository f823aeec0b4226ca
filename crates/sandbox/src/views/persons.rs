//! Persons of stored rows: the scan of a stored table, and the distinct person indexes of the
//! rows matching a filter (details through their parent record's person). The cohort, the
//! risk summary's code counts and consent withdrawals all ask this.

use super::*;

/// The scan of stored `db.table`; an error when it was never ingested (an approved table is
/// never silently empty).
pub(crate) async fn scan_stored(
    ctx: &SessionContext,
    store: &Store,
    db: &str,
    table: &str,
) -> Result<LogicalPlan, SandboxError> {
    if store.manifest(db, table).ok().flatten().is_none() {
        return Err(SandboxError::Unavailable(format!(
            "{db}.{table} is approved but not in the store"
        )));
    }
    let path = store.table_dir(db, table).to_string_lossy().into_owned();
    let df = ctx
        .read_parquet(path, ParquetReadOptions::default())
        .await?;
    Ok(df.into_unoptimized_plan())
}

/// Whether stored `db.table` has rows to read (ingested, and not empty).
pub(crate) fn has_rows(store: &Store, db: &str, table: &str) -> Result<bool, SandboxError> {
    let manifest = store
        .manifest(db, table)
        .map_err(|e| SandboxError::Unavailable(format!("{db}.{table}: {e}")))?;
    Ok(manifest.is_some_and(|m| !m.parts.is_empty()))
}

/// Distinct person indexes of the rows of `table` in `db` matching `matches`; details are
/// matched through their parent record's person. `period` narrows the rows (the parent's, for
/// details).
pub(crate) async fn persons_matching(
    ctx: &SessionContext,
    store: &Store,
    catalog: &Catalog,
    db: &str,
    table: &Table,
    matches: Expr,
    period: impl Fn(&Table) -> Result<Option<Expr>, SandboxError>,
) -> Result<Vec<u32>, SandboxError> {
    let persons = if let Some(link) = &table.parent {
        let parent = catalog.table(db, &link.table).ok_or_else(|| {
            SandboxError::Unavailable(format!("{db}.{} is not in the catalog", link.table))
        })?;
        let details = LogicalPlanBuilder::from(scan_stored(ctx, store, db, &table.name).await?)
            .filter(matches)?
            .project(vec![col(link.key.as_str())])?
            .alias("detail")?
            .build()?;
        let mut parent_rows =
            LogicalPlanBuilder::from(scan_stored(ctx, store, db, &parent.name).await?);
        if let Some(f) = period(parent)? {
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
        let mut b = LogicalPlanBuilder::from(scan_stored(ctx, store, db, &table.name).await?)
            .filter(matches)?;
        if let Some(f) = period(table)? {
            b = b.filter(f)?;
        }
        b.build()?
    };
    let distinct = LogicalPlanBuilder::from(persons)
        .filter(col("person_idx").is_not_null())?
        .project(vec![col("person_idx")])?
        .distinct()?
        .build()?;
    let batches = ctx.execute_logical_plan(distinct).await?.collect().await?;
    person_indexes(&batches)
}

/// The person indexes of the first column of `batches`, nulls left out.
pub(crate) fn person_indexes(
    batches: &[arrow::array::RecordBatch],
) -> Result<Vec<u32>, SandboxError> {
    let mut out = Vec::new();
    for b in batches {
        let a = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::UInt32Array>()
            .ok_or_else(|| SandboxError::Unavailable("person index is not UInt32".into()))?;
        out.extend(a.iter().flatten());
    }
    Ok(out)
}
