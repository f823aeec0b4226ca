//! Standard datasets (決められたデータセット) as the custodian defines them in
//! `catalog/standard/*.toml`: the same items for every requester, built once per data version.
//! A definition says what its query may read (as a project is approved for tables and
//! columns), the items of its file (grouping items first: the rows are ordered by them, then
//! the measures), and the query itself, which the guard and disclosure control check like any
//! researcher's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::anonymisation::Anonymisation;
use crate::{Catalog, CatalogError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardDataset {
    /// Lower-case letters, digits and `-`; the file's stem.
    pub name: String,
    pub title_ja: String,
    pub title_en: String,
    pub meaning_ja: String,
    pub meaning_en: String,
    /// Tables (`db.table`) and columns the query may read.
    pub tables: Vec<SourceTable>,
    /// Databases linked by ID5 for it (as a project's linkage groups).
    #[serde(default)]
    pub linkage: Vec<Vec<String>>,
    /// Items the rows are grouped by, in the order the file is sorted by (a table of counts).
    #[serde(default)]
    pub grouping: Vec<Item>,
    /// Counts and distributions per group.
    #[serde(default)]
    pub measures: Vec<Item>,
    /// For an anonymised record-level extract instead of a table of counts: its columns and
    /// how they are anonymised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymisation: Option<Anonymisation>,
    /// The query: it must give exactly the grouping items, then the measures.
    pub sql: String,
    /// Persons a released cell must rest on, where stricter than the disclosure policy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_persons: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    pub table: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub name: String,
    pub meaning_ja: String,
    pub meaning_en: String,
}

/// A definition with the text it was read from (part of every version's digest).
#[derive(Debug, Clone)]
pub struct Definition {
    pub dataset: StandardDataset,
    pub text: String,
}

/// Every definition, by name.
#[derive(Debug, Clone, Default)]
pub struct StandardDatasets {
    pub datasets: BTreeMap<String, Definition>,
}

/// The column the file adds after the measures: which of the row's cells are masked.
pub const MASKED_COLUMN: &str = "masked";

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl StandardDataset {
    /// The file's columns, in order (for a table of counts, before the `masked` column).
    pub fn items(&self) -> Vec<Item> {
        match &self.anonymisation {
            Some(a) => a.items(),
            None => self
                .grouping
                .iter()
                .chain(&self.measures)
                .cloned()
                .collect(),
        }
    }

    /// Whether its file is anonymised records rather than counts.
    pub fn is_record_level(&self) -> bool {
        self.anonymisation.is_some()
    }

    /// Problems with the definition against the catalog, each named.
    fn problems(&self, catalog: &Catalog) -> Vec<String> {
        let mut problems = Vec::new();
        if !plain_name(&self.name) {
            problems.push(format!(
                "name {:?} is not lower-case letters, digits and -",
                self.name
            ));
        }
        if self.tables.is_empty() {
            problems.push("it reads no table".into());
        }
        for t in &self.tables {
            let Some((db, name)) = t.table.split_once('.') else {
                problems.push(format!("table {:?} is not db.table", t.table));
                continue;
            };
            let Some(table) = catalog.table(db, name) else {
                problems.push(format!("no table {} in the catalog", t.table));
                continue;
            };
            for c in &t.columns {
                if table.column(c).is_none() {
                    problems.push(format!("no column {c} in {}", t.table));
                }
            }
        }
        let mut seen = BTreeSet::new();
        if let Some(a) = &self.anonymisation {
            if !self.grouping.is_empty() || !self.measures.is_empty() {
                problems.push(
                    "an anonymised extract has columns, not grouping items and measures".into(),
                );
            }
            problems.extend(a.problems());
            if self.sql.trim().is_empty() {
                problems.push("it has no query".into());
            }
            return problems;
        }
        for item in self.items() {
            if !seen.insert(item.name.clone()) {
                problems.push(format!("item {} is named twice", item.name));
            }
            if item.name == MASKED_COLUMN {
                problems.push(format!("item {MASKED_COLUMN} is the file's own"));
            }
        }
        if self.grouping.is_empty() || self.measures.is_empty() {
            problems.push("it needs grouping items and measures".into());
        }
        if self.sql.trim().is_empty() {
            problems.push("it has no query".into());
        }
        // Disclosure control masks the later of two cells that would difference each other:
        // ordered by its groups, every build of a version masks the same cells.
        let order = format!(
            "ORDER BY {}",
            self.grouping
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let sql = self.sql.split_whitespace().collect::<Vec<_>>().join(" ");
        if !sql.trim_end_matches(';').trim_end().ends_with(&order) {
            problems.push(format!(
                "its query must end with {order}, so that every build masks the same cells"
            ));
        }
        problems
    }
}

impl StandardDatasets {
    /// Reads `dir/*.toml` (none when `dir` does not exist) and checks each against `catalog`.
    pub fn load(dir: &Path, catalog: &Catalog) -> Result<Self, CatalogError> {
        let mut out = Self::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => {
                return Err(CatalogError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Io {
                path: path.clone(),
                source,
            })?;
            let invalid = |message: String| CatalogError::Parse {
                path: path.clone(),
                message,
            };
            let dataset: StandardDataset =
                toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
            if path.file_stem().and_then(|s| s.to_str()) != Some(dataset.name.as_str()) {
                return Err(invalid(format!(
                    "the file of {} is named {}.toml",
                    dataset.name, dataset.name
                )));
            }
            let problems = dataset.problems(catalog);
            if !problems.is_empty() {
                return Err(invalid(problems.join("; ")));
            }
            out.datasets
                .insert(dataset.name.clone(), Definition { dataset, text });
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Option<&Definition> {
        self.datasets.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.datasets.keys().map(String::as_str)
    }
}
