//! The catalog: what every database, table and column is (type, meaning in Japanese and
//! English, sensitivity class, code system), read from `catalog/*.toml`.
//!
//! Ingest is driven by it and refuses anything it does not describe (fail closed). Identifier
//! columns (`id1`, `id2`, `id5`, `research_id`, `person_idx`) are described once in
//! `catalog/identifiers.toml` and attached to each table that declares them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod anonymisation;
mod render;
pub mod standard;
pub use render::{display_width, render_table};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("catalog is inconsistent: {0}")]
    Invalid(String),
    #[error("no database {0:?} in the catalog")]
    UnknownDatabase(String),
}

/// The project pseudonym column every person-level view gets (never stored).
pub const PSEUDONYM_COLUMN: &str = "pid";

/// The function a view computes [`PSEUDONYM_COLUMN`] with, from the stored person index. It is
/// never on a researcher's allowlist, so in a plan it is a view's or disclosure control's own.
pub const PSEUDONYM_FUNCTION: &str = "niji_pseudonym";

/// How sensitive a column is; drives what ingest drops and (later) what projects may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// Names, insured-number parts, 承諾番号, addresses, phone numbers: dropped at ingest.
    DirectIdentifier,
    /// Birth date, sex, area, facility: identify in combination.
    QuasiIdentifier,
    /// Diagnoses, treatments, clinical values.
    Sensitive,
    /// Keyed-hash identifiers and the internal person index.
    Pseudonym,
    Other,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::DirectIdentifier => "direct_identifier",
            Sensitivity::QuasiIdentifier => "quasi_identifier",
            Sensitivity::Sensitive => "sensitive",
            Sensitivity::Pseudonym => "pseudonym",
            Sensitivity::Other => "other",
        }
    }
}

/// Stored (Arrow) type of a column, and how its extract text is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    String,
    Int32,
    Int64,
    Float64,
    Bool,
    /// Any accepted date form (和暦 元号コード+YYMMDD, 西暦, era letters): stored as Date32.
    Date,
    /// `YYYYMM`, stored as Int32 (for example 202210).
    YearMonth,
    /// The 64-hex-digit keyed identifiers.
    Hex64,
    /// The internal person index (UInt32).
    PersonIndex,
}

/// What a column contributes to identifiers. Columns with a role are identifier inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    RecordKey,
    InsurerNo,
    InsuredSymbol,
    InsuredNumber,
    InsuredBranch,
    KanaName,
    BirthDate,
    Sex,
    ConsentNo,
    /// The eligibility system's own person reference in the insured-number history.
    HistoryPerson,
    ValidFrom,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub class: Sensitivity,
    pub meaning_ja: String,
    pub meaning_en: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub free_text: bool,
    /// Set on identifier columns produced at ingest rather than read from the extract.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub derived: bool,
    /// What the column means to disclosure control (facilities counted behind a cell, the
    /// municipality a cell is about, its population).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<DisclosureRole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisclosureRole {
    Facility,
    Municipality,
    Population,
}

impl Column {
    /// Whether ingest writes this column to the store.
    pub fn is_stored(&self) -> bool {
        self.class != Sensitivity::DirectIdentifier
    }
}

/// Text encodings that extracts arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    Utf8,
    /// Shift_JIS as Windows writes it (CP932).
    Cp932,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub name: String,
    pub meaning_ja: String,
    pub meaning_en: String,
    /// The extract's file name inside `<raw>/<database>/`.
    pub source: String,
    #[serde(default)]
    pub encoding: Encoding,
    /// Derived identifier columns this table gets (`id1`, `id2`, `id5`, `research_id`).
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// Columns as they appear in the extract, in order; derived ones are appended on load.
    pub columns: Vec<Column>,
    /// The column a project's approved data period is applied to: a date, a `YYYYMM`, or an
    /// integer 年度 (fiscal year, April to March).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_column: Option<String>,
    /// For detail records (傷病名, 診療行為, 医薬品) that belong to a record of another table of the
    /// same database: that table, whose period and persons decide which details a project sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentLink>,
}

/// `key` in this table holds the parent table's record key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentLink {
    pub table: String,
    pub key: String,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The stored column with this meaning to disclosure control, if any.
    pub fn column_for(&self, role: DisclosureRole) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.disclosure == Some(role) && c.is_stored())
    }

    pub fn column_with_role(&self, role: Role) -> Option<&Column> {
        self.columns.iter().find(|c| c.role == Some(role))
    }

    /// Extract columns (not derived), in file order.
    pub fn source_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.derived)
    }

    /// Rows about persons: a person-level table, or the details of one.
    pub fn is_about_persons(&self) -> bool {
        self.is_person_level() || self.parent.is_some()
    }

    /// Whether the table holds records of persons (gets a person index).
    pub fn is_person_level(&self) -> bool {
        self.identifiers.iter().any(|i| i == "id5")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub name: String,
    pub title_ja: String,
    pub title_en: String,
    /// Ingest order across databases: the insured-number history goes first.
    #[serde(default)]
    pub ingest_order: i32,
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifierFile {
    columns: Vec<Column>,
}

/// Inputs each identifier needs, by role (DESIGN.md, Identifiers).
pub fn identifier_inputs(identifier: &str) -> Option<&'static [Role]> {
    use Role::*;
    Some(match identifier {
        "id1" => &[InsurerNo, InsuredSymbol, InsuredNumber, BirthDate, Sex],
        "id2" => &[KanaName, BirthDate, Sex],
        "id5" => &[InsurerNo, InsuredSymbol, InsuredNumber, InsuredBranch],
        "research_id" => &[KanaName, Sex, BirthDate, ConsentNo],
        _ => return None,
    })
}

/// The whole catalog, keyed by database name.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub databases: BTreeMap<String, Database>,
}

impl Catalog {
    /// Loads `identifiers.toml` and every other `*.toml` in `dir` (not subdirectories, which
    /// hold other kinds of definitions such as standard datasets).
    pub fn load(dir: &Path) -> Result<Self, CatalogError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let parse_err = |path: &Path, e: toml::de::Error| CatalogError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let id_path = dir.join("identifiers.toml");
        let ids: IdentifierFile =
            toml::from_str(&read(&id_path)?).map_err(|e| parse_err(&id_path, e))?;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| CatalogError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "toml")
                    && p.file_name().is_some_and(|n| n != "identifiers.toml")
            })
            .collect();
        entries.sort();
        let mut databases = BTreeMap::new();
        for path in entries {
            let mut db: Database =
                toml::from_str(&read(&path)?).map_err(|e| parse_err(&path, e))?;
            for table in &mut db.tables {
                attach_identifiers(table, &ids.columns)?;
            }
            if databases.insert(db.name.clone(), db).is_some() {
                return Err(CatalogError::Invalid(format!(
                    "database defined twice (in {})",
                    path.display()
                )));
            }
        }
        let catalog = Self { databases };
        catalog.validate()?;
        Ok(catalog)
    }

    /// Table `name` of database `db`.
    pub fn table(&self, db: &str, name: &str) -> Option<&Table> {
        self.databases
            .get(db)?
            .tables
            .iter()
            .find(|t| t.name == name)
    }

    pub fn database(&self, name: &str) -> Result<&Database, CatalogError> {
        self.databases
            .get(name)
            .ok_or_else(|| CatalogError::UnknownDatabase(name.to_string()))
    }

    /// Databases in ingest order (then by name).
    pub fn in_ingest_order(&self) -> Vec<&Database> {
        let mut dbs: Vec<&Database> = self.databases.values().collect();
        dbs.sort_by_key(|d| (d.ingest_order, d.name.clone()));
        dbs
    }

    fn validate(&self) -> Result<(), CatalogError> {
        let mut problems = String::new();
        for db in self.databases.values() {
            for t in &db.tables {
                let at = format!("{}.{}", db.name, t.name);
                let mut names = BTreeSet::new();
                for c in &t.columns {
                    if !names.insert(c.name.as_str()) {
                        let _ = writeln!(problems, "{at}: column {} described twice", c.name);
                    }
                    if c.meaning_ja.trim().is_empty() || c.meaning_en.trim().is_empty() {
                        let _ = writeln!(problems, "{at}.{}: meaning missing", c.name);
                    }
                }
                let mut roles = BTreeSet::new();
                for role in t.columns.iter().filter_map(|c| c.role) {
                    if !roles.insert(role) {
                        let _ = writeln!(problems, "{at}: role {role:?} given to two columns");
                    }
                }
                if !roles.contains(&Role::RecordKey) {
                    let _ = writeln!(problems, "{at}: no record_key column");
                }
                if let Some(p) = &t.period_column {
                    match t.column(p).map(|c| c.ty) {
                        Some(ColumnType::Date | ColumnType::YearMonth | ColumnType::Int32) => {}
                        _ => {
                            let _ = writeln!(problems, "{at}: period column {p} is not a date");
                        }
                    }
                }
                if let Some(link) = &t.parent {
                    let parent = db.tables.iter().find(|x| x.name == link.table);
                    if !parent.is_some_and(Table::is_person_level) {
                        let _ = writeln!(
                            problems,
                            "{at}: parent {} is not a person-level table of {}",
                            link.table, db.name
                        );
                    }
                    if !t
                        .column(&link.key)
                        .is_some_and(|c| c.ty == ColumnType::String)
                    {
                        let _ = writeln!(
                            problems,
                            "{at}: parent key {} is not a text column",
                            link.key
                        );
                    }
                }
                for id in &t.identifiers {
                    match identifier_inputs(id) {
                        None => {
                            let _ = writeln!(problems, "{at}: unknown identifier {id}");
                        }
                        Some(inputs) => {
                            for role in inputs.iter().filter(|r| !roles.contains(r)) {
                                let _ = writeln!(
                                    problems,
                                    "{at}: identifier {id} needs a column with role {role:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Invalid(problems.trim_end().to_string()))
        }
    }
}

fn attach_identifiers(table: &mut Table, described: &[Column]) -> Result<(), CatalogError> {
    let mut wanted: Vec<&str> = table.identifiers.iter().map(String::as_str).collect();
    if table.is_person_level() {
        wanted.push("person_idx");
    }
    for name in wanted {
        let column = described.iter().find(|c| c.name == name).ok_or_else(|| {
            CatalogError::Invalid(format!(
                "{}: identifier {name} is not described in identifiers.toml",
                table.name
            ))
        })?;
        table.columns.push(Column {
            derived: true,
            ..column.clone()
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog_dir() -> PathBuf {
        Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
            .join("../../catalog")
    }

    #[test]
    fn shipped_catalog_loads_and_describes_identifiers() {
        let catalog = Catalog::load(&catalog_dir()).unwrap();
        for db in [
            "ndb",
            "kaigo",
            "dpc",
            "nanbyo",
            "shoman",
            "history",
            "reference",
        ] {
            assert!(catalog.databases.contains_key(db), "{db}");
        }
        let receipts = catalog
            .database("ndb")
            .unwrap()
            .tables
            .iter()
            .find(|t| t.name == "receipts")
            .unwrap();
        let id5 = receipts.column("id5").unwrap();
        assert_eq!(id5.class, Sensitivity::Pseudonym);
        assert!(id5.derived);
        assert!(receipts.column("person_idx").is_some());
        assert_eq!(
            receipts.column("kana_name").unwrap().class,
            Sensitivity::DirectIdentifier
        );
        assert!(!receipts.column("kana_name").unwrap().is_stored());
    }

    /// Loads a catalog of the shipped identifiers plus one database file.
    fn load_with(database_toml: &str) -> Result<Catalog, CatalogError> {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(
            catalog_dir().join("identifiers.toml"),
            tmp.path().join("identifiers.toml"),
        )
        .unwrap();
        std::fs::write(tmp.path().join("x.toml"), database_toml).unwrap();
        Catalog::load(tmp.path())
    }

    #[test]
    fn identifier_without_its_inputs_is_refused() {
        let err = load_with(
            r#"name = "x"
title_ja = "x"
title_en = "x"
[[tables]]
name = "t"
meaning_ja = "t"
meaning_en = "t"
source = "t.csv"
identifiers = ["id2"]
[[tables.columns]]
name = "record_key"
type = "string"
class = "other"
role = "record_key"
meaning_ja = "キー"
meaning_en = "key"
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("identifier id2 needs a column with role KanaName"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_in_catalog_files_are_refused() {
        let result = load_with(
            "name = \"x\"\ntitle_ja = \"x\"\ntitle_en = \"x\"\ntables = []\nsecret = 1\n",
        );
        assert!(matches!(result, Err(CatalogError::Parse { .. })));
    }
}
