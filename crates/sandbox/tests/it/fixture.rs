//! The seeded environment of [`niji_testkit`] in a temporary directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use niji_governance::{ApprovedTable, Member, MemberRole};
use niji_sandbox::{Mode, QueryOutcome, QueryRequest, Scope, Visiting};

pub use niji_testkit::{OTHER, Overrides, PROJECT};

pub fn repo() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo");
    PathBuf::from(manifest).join("../..")
}

pub fn spec_text() -> String {
    std::fs::read_to_string(repo().join("sandbox/examples/project.toml")).expect("example spec")
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub visiting: Arc<Visiting>,
    pub settings: niji_sandbox::Settings,
    pub alice: String,
    pub bob: String,
    pub carol: String,
}

impl Fixture {
    /// `limits` (TOML text) overrides sandbox/limits.toml when given.
    pub async fn new(limits: Option<&str>) -> Fixture {
        Self::with(
            400,
            Overrides {
                limits,
                ..Overrides::default()
            },
        )
        .await
    }

    /// A store of `persons` synthetic persons, with `overrides`.
    pub async fn with(persons: u64, overrides: Overrides<'_>) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let seeded = niji_testkit::seed(dir.path(), &repo(), persons, overrides)
            .await
            .expect("seeded environment");
        let token = |u: &str| seeded.tokens[u].clone();
        Fixture {
            alice: token("alice"),
            bob: token("bob"),
            carol: token("carol"),
            visiting: seeded.visiting,
            settings: seeded.settings,
            dir,
        }
    }

    pub async fn query_as(&self, user: &str, project: &str, mode: Mode, sql: &str) -> QueryOutcome {
        self.visiting
            .query(&QueryRequest {
                user: user.into(),
                scope: Scope::project(project),
                mode,
                sql: sql.into(),
                via: "test",
            })
            .await
    }

    /// alice in the example project.
    pub async fn query(&self, mode: Mode, sql: &str) -> QueryOutcome {
        self.query_as("alice", PROJECT, mode, sql).await
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

pub use niji_testkit::text_rows;

/// All values of one column as strings (NULL for null).
pub fn column(outcome: &QueryOutcome, name: &str) -> Vec<String> {
    let Some(schema) = &outcome.schema else {
        return Vec::new();
    };
    let idx = schema.index_of(name).expect("column present");
    text_rows(&outcome.batches)
        .into_iter()
        .map(|mut row| row.swap_remove(idx))
        .collect()
}

/// `sql` over the stored tables themselves, bypassing niji: the truth. Each table is named
/// as in its database (`receipts`, `surveys`, `municipalities`, …), with the store's columns
/// (`person_idx`, not `pid`).
pub async fn from_store(f: &Fixture, sql: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    let store = f.data_dir().join("store");
    for db in std::fs::read_dir(&store).expect("store") {
        let db = db.expect("store entry").path();
        if !db.is_dir() {
            continue;
        }
        for table in std::fs::read_dir(&db).expect("database") {
            let dir = table.expect("table").path();
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let has_parts = std::fs::read_dir(&dir).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "parquet")))
            });
            if has_parts && !ctx.table_exist(name).unwrap_or(true) {
                ctx.register_parquet(
                    name,
                    dir.to_string_lossy().as_ref(),
                    ParquetReadOptions::default(),
                )
                .await
                .expect("stored table");
            }
        }
    }
    ctx.sql(sql)
        .await
        .expect("sql")
        .collect()
        .await
        .expect("truth")
}

/// Per prefecture, from the stored receipts: (distinct persons with an ID5, receipts).
pub async fn per_prefecture(f: &Fixture) -> BTreeMap<String, (i64, i64)> {
    let batches = from_store(
        f,
        "SELECT prefecture, count(DISTINCT person_idx), count(*) FROM receipts GROUP BY prefecture",
    )
    .await;
    text_rows(&batches)
        .into_iter()
        .map(|row| {
            let n = |i: usize| row[i].parse::<i64>().expect("count");
            (row[0].clone(), (n(1), n(2)))
        })
        .collect()
}

/// A store of 400 persons checked under the published disclosure rules with `from` (a line
/// of policies/disclosure.toml) replaced by `to`.
pub async fn with_policy(from: &str, to: &str) -> Fixture {
    let published =
        std::fs::read_to_string(repo().join("policies/disclosure.toml")).expect("policy");
    let changed = published.replace(from, to);
    assert_ne!(changed, published, "{from} is in the published policy");
    Fixture::with(
        400,
        Overrides {
            disclosure: Some(&changed),
            ..Overrides::default()
        },
    )
    .await
}

/// A copy of the example project named `id`, with `members` (the first leads it) and
/// `extra` columns approved as (table, column) besides the example's.
pub async fn project_with(f: &Fixture, id: &str, members: &[&str], extra: &[(&str, &str)]) {
    let mut spec = niji_testkit::example_spec(&repo()).expect("spec");
    spec.id = id.into();
    for (table, column) in extra {
        match spec.tables.iter_mut().find(|t| t.table == *table) {
            Some(t) => t.columns.push((*column).into()),
            None => spec.tables.push(ApprovedTable {
                table: (*table).into(),
                columns: vec![(*column).into()],
            }),
        }
    }
    spec.members = members
        .iter()
        .enumerate()
        .map(|(i, u)| Member {
            user: (*u).into(),
            role: if i == 0 {
                MemberRole::Lead
            } else {
                MemberRole::Researcher
            },
        })
        .collect();
    f.visiting
        .platform()
        .create_project("test", &spec, f.visiting.catalog())
        .await
        .expect("project");
}

/// Creates project "narrow" (the example's members): a half year, 2022-01 to 2022-06, and a
/// cohort of persons with an E11 diagnosis in it.
pub async fn narrow_project(f: &Fixture) {
    let mut narrow = niji_testkit::example_spec(&repo()).expect("spec");
    narrow.id = "narrow".into();
    narrow.period = Some(niji_governance::Period {
        from: "2022-01".into(),
        to: "2022-06".into(),
    });
    narrow.cohort = Some(niji_governance::Cohort {
        source: "ndb.diagnoses.icd10".into(),
        codes: vec!["E11".into()],
    });
    f.visiting
        .platform()
        .create_project("test", &narrow, f.visiting.catalog())
        .await
        .expect("narrow project");
}

/// The registrations of the raw 難病DB extract a fixture of `persons` with `overrides`
/// ingested, by record key (kana name, sex, birth date, consent number as written): the
/// extract is generated again from the fixture's seed (ingest removed it).
pub fn raw_registrations(persons: u64, overrides: &Overrides<'_>) -> BTreeMap<String, [String; 4]> {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = niji_testkit::synth_config(persons, overrides, dir.path().to_path_buf());
    niji_synth::generate(&cfg, &|_, _| {}).expect("synthetic extract");
    let raw = std::fs::read(dir.path().join("raw/nanbyo/surveys.csv")).expect("surveys");
    let text = String::from_utf8_lossy(&raw);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).expect("column");
    let (key, kana, sex, birth, consent) = (
        at("record_key"),
        at("kana_name"),
        at("sex"),
        at("birth_date"),
        at("consent_no"),
    );
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() == header.len())
        .map(|f| {
            let fields = [f[kana], f[sex], f[birth], f[consent]].map(str::to_string);
            (f[key].to_string(), fields)
        })
        .collect()
}
