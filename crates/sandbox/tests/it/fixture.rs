//! The seeded environment of [`niji_sandbox::testing`] in a temporary directory.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use niji_sandbox::{Mode, QueryOutcome, QueryRequest, Visiting};

pub use niji_sandbox::testing::{OTHER, Overrides, PROJECT};

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
        let seeded = niji_sandbox::testing::seed(dir.path(), &repo(), persons, overrides)
            .await
            .expect("seeded environment");
        let token = |u: &str| seeded.tokens[u].clone();
        Fixture {
            alice: token("alice"),
            bob: token("bob"),
            carol: token("carol"),
            visiting: seeded.visiting,
            dir,
        }
    }

    pub async fn query_as(&self, user: &str, project: &str, mode: Mode, sql: &str) -> QueryOutcome {
        self.visiting
            .query(&QueryRequest {
                user: user.into(),
                project: project.into(),
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

/// All values of one column as strings (NULL for null).
pub fn column(outcome: &QueryOutcome, name: &str) -> Vec<String> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in &outcome.batches {
        let idx = b.schema().index_of(name).expect("column present");
        let f = ArrayFormatter::try_new(b.column(idx).as_ref(), &options).expect("formatter");
        for i in 0..b.num_rows() {
            out.push(f.value(i).to_string());
        }
    }
    out
}

/// `sql` over the stored receipts themselves (table `receipts`), bypassing niji: the truth.
pub async fn from_store(f: &Fixture, sql: &str) -> Vec<arrow::array::RecordBatch> {
    let ctx = SessionContext::new();
    let dir = f.data_dir().join("store/ndb/receipts");
    ctx.register_parquet(
        "receipts",
        dir.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .expect("store");
    ctx.sql(sql)
        .await
        .expect("sql")
        .collect()
        .await
        .expect("truth")
}
