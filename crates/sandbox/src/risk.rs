//! The store's side of an application's risk summary: how many persons have each code its
//! cohort asks for, against the disclosure threshold of the code's database. A committee
//! member sees that a code is under the threshold, not how far under.

use std::collections::HashMap;

use datafusion::logical_expr::{col, lit};
use datafusion::prelude::SessionContext;
use niji_governance::applications::risk::CodeCount;
use niji_governance::{ApplicationPage, Cohort};
use niji_store::Store;

use super::*;

/// Counts per (source, code), for the store as it was when they were counted.
#[derive(Debug, Default)]
pub(crate) struct CodeCounts {
    counted_on: views::StoreStamp,
    persons: HashMap<(String, String), u64>,
}

impl Visiting {
    /// Application `id` as `user` may see it, its risk summary (the committee's) completed
    /// with the store's counts of the cohort's codes.
    pub async fn application_page(
        &self,
        user: &str,
        id: &str,
    ) -> Result<ApplicationPage, SandboxError> {
        let mut page = self
            .platform
            .application_page(user, id, &self.catalog)
            .await?;
        if let (Some(risk), Some(cohort)) = (page.risk.as_mut(), &page.application.form.cohort) {
            risk.add_code_counts(self.code_counts(cohort).await?);
        }
        Ok(page)
    }

    async fn code_counts(&self, cohort: &Cohort) -> Result<Vec<CodeCount>, SandboxError> {
        let mut parts = cohort.source.splitn(3, '.');
        let (Some(db), Some(name), Some(column)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(Vec::new());
        };
        let threshold = self.disclosure.rules(db).min_persons;
        let stamp = views::store_stamp(&self.settings.data_dir);
        let mut out = Vec::new();
        for code in &cohort.codes {
            let key = (cohort.source.clone(), code.clone());
            let known = {
                let mut cache = self.code_counts.lock().await;
                if cache.counted_on != stamp {
                    *cache = CodeCounts {
                        counted_on: stamp.clone(),
                        persons: HashMap::new(),
                    };
                }
                cache.persons.get(&key).copied()
            };
            let persons = match known {
                Some(n) => n,
                None => {
                    let n = self.persons_with(db, name, column, code).await?;
                    // Kept only if the store is still the one it was counted on.
                    let mut cache = self.code_counts.lock().await;
                    if cache.counted_on == stamp {
                        cache.persons.insert(key, n);
                    }
                    n
                }
            };
            out.push(CodeCount {
                source: cohort.source.clone(),
                code: code.clone(),
                persons: (persons >= threshold).then_some(persons),
                threshold,
                under_threshold: persons < threshold,
            });
        }
        Ok(out)
    }

    /// Distinct persons of stored rows of `db.name` whose `column` starts with `code`
    /// (details through their parent record's person). A table not in the store has none.
    async fn persons_with(
        &self,
        db: &str,
        name: &str,
        column: &str,
        code: &str,
    ) -> Result<u64, SandboxError> {
        let store = Store::new(&self.settings.data_dir);
        let Some(table) = self.catalog.table(db, name) else {
            return Ok(0);
        };
        let tables = std::iter::once(name).chain(table.parent.as_ref().map(|l| l.table.as_str()));
        for t in tables {
            if !views::has_rows(&store, db, t)? {
                return Ok(0);
            }
        }
        let ctx = SessionContext::new_with_config(views::session_config(&self.limits));
        let matches = col(column).like(lit(format!("{}%", views::escape_like(code))));
        let persons =
            views::persons_matching(&ctx, &store, &self.catalog, db, table, matches, |_| {
                Ok(None)
            })
            .await?;
        Ok(persons.len() as u64)
    }
}
