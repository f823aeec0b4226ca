//! Consent withdrawals in the views: the rows of each withdrawn registration (by its 研究用ID,
//! in the consent-based tables) and every row of its person (by person index, in every
//! person-level table of every database) are left out.

use super::*;

/// Where the withdrawn registrations are in the store.
#[derive(Debug, Default)]
pub struct RegistrationRows {
    /// Stored rows carrying one of the 研究用IDs.
    pub rows: u64,
    /// Their persons (rows without an ID5 have none).
    pub persons: Vec<u32>,
}

/// Finds the rows of the registrations `research_ids` in every stored table that has a
/// 研究用ID, of database `within` only when given.
pub async fn registration_rows(
    ctx: &SessionContext,
    store: &Store,
    catalog: &Catalog,
    within: Option<&str>,
    research_ids: &[String],
) -> Result<RegistrationRows, SandboxError> {
    let mut found = RegistrationRows::default();
    if research_ids.is_empty() {
        return Ok(found);
    }
    let ids: Vec<Expr> = research_ids.iter().map(|r| lit(r.as_str())).collect();
    let mut persons = BTreeSet::new();
    let databases = catalog
        .databases
        .iter()
        .filter(|(db, _)| within.is_none_or(|w| w == db.as_str()));
    for (db, database) in databases {
        for table in database.tables.iter().filter(|t| has_research_id(t)) {
            // A table not ingested, or ingested empty, has no files to read.
            if !has_rows(store, db, &table.name)? {
                continue;
            }
            let plan = LogicalPlanBuilder::from(scan_stored(ctx, store, db, &table.name).await?)
                .filter(col("research_id").in_list(ids.clone(), false))?
                .project(vec![col("person_idx")])?
                .build()?;
            let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
            found.rows += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            persons.extend(person_indexes(&batches)?);
        }
    }
    found.persons = persons.into_iter().collect();
    Ok(found)
}

fn has_research_id(table: &Table) -> bool {
    table.identifiers.iter().any(|i| i == "research_id")
}

/// The withdrawals a project's views leave out.
pub(super) struct Withdrawn {
    research_ids: Vec<Expr>,
    persons: Option<ScalarUDF>,
}

impl Withdrawn {
    pub(super) fn new(label: &str, research_ids: &[String], persons: Vec<u32>) -> Self {
        Self {
            research_ids: research_ids.iter().map(|r| lit(r.as_str())).collect(),
            persons: (!persons.is_empty())
                .then(|| PersonSetUdf::withdrawn(label, Arc::new(PersonSetUdf::bitmap(persons)))),
        }
    }

    /// The rows of a person-level table that stay: not of a withdrawn person, and not of a
    /// withdrawn registration (which may have no person).
    pub(super) fn keep(&self, table: &Table) -> Option<Expr> {
        let mut parts = Vec::new();
        if let Some(udf) = &self.persons {
            parts.push(datafusion::logical_expr::not(
                udf.call(vec![col("person_idx")]),
            ));
        }
        if has_research_id(table) && !self.research_ids.is_empty() {
            parts.push(
                col("research_id")
                    .is_null()
                    .or(col("research_id").in_list(self.research_ids.clone(), true)),
            );
        }
        conjunction(parts)
    }
}
