//! SQL behaviour of the chokepoint in sqllogictest files (`tests/slt/*.slt`), run as alice in
//! the example project on dummy data. An error record's message is the outcome's message.

use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use niji_sandbox::{Mode, QueryRequest, Scope, Status, Visiting};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

use crate::fixture::{Fixture, PROJECT, repo};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

struct Chokepoint(Arc<Visiting>);

#[async_trait::async_trait]
impl AsyncDB for Chokepoint {
    type Error = Refused;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Refused> {
        let outcome = self
            .0
            .query(&QueryRequest {
                user: "alice".into(),
                scope: Scope::project(PROJECT),
                mode: Mode::Dummy,
                sql: sql.into(),
                via: "slt",
            })
            .await;
        match outcome.status {
            Status::Ok if outcome.schema.is_some() => {
                let options = FormatOptions::default().with_null("NULL");
                let mut rows = Vec::new();
                for b in &outcome.batches {
                    let formatters = b
                        .columns()
                        .iter()
                        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| Refused(e.to_string()))?;
                    for i in 0..b.num_rows() {
                        rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
                    }
                }
                Ok(DBOutput::Rows {
                    types: vec![DefaultColumnType::Any; outcome.columns().len()],
                    rows,
                })
            }
            Status::Ok => Ok(DBOutput::StatementComplete(0)),
            _ => Err(Refused(outcome.message)),
        }
    }

    async fn shutdown(&mut self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let fixture = Fixture::new(None).await;
    let dir = repo().join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/slt")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    for file in files {
        let v = fixture.visiting.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let v = v.clone();
            async move { Ok::<_, Refused>(Chokepoint(v)) }
        });
        // Column types are not part of the outcome; values are compared.
        runner.with_column_validator(|_, _| true);
        if let Err(e) = runner.run_file_async(&file).await {
            panic!("{}: {e}", file.display());
        }
    }
}
