//! Throwaway platform databases for tests. [`TestDb::new`] gives a fresh database on either
//! backend: a SQLite file in a temporary directory, or a database of its own on a PostgreSQL
//! server that this crate starts from Debian's binaries (`scripts/setup-postgres.sh` installs
//! them): its own data directory in a temporary directory, a free port on 127.0.0.1, shared by
//! the tests of one process and stopped when that process ends, however it ends.
//!
//! [`on_both_backends!`] turns `async fn name(db: TestDb)` into one test per backend.

mod server;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

pub use server::PostgresServer;

/// Which backend a test database is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database and a temporary directory beside it (for anchors and files).
#[derive(Debug)]
pub struct TestDb {
    url: String,
    backend: Backend,
    dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = match backend {
            Backend::Sqlite => {
                format!("sqlite://{}?mode=rwc", dir.path().join("niji.db").display())
            }
            Backend::Postgres => {
                static NEXT: AtomicU32 = AtomicU32::new(1);
                let name = format!(
                    "niji_test_{}_{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                PostgresServer::shared().create_database(&name).await
            }
        };
        Self { url, backend, dir }
    }

    /// The database's URL (SQLite: `sqlite://…`; PostgreSQL: `postgres://…`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A temporary directory that lives as long as this database.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One `#[tokio::test]` per backend for each `async fn name(db: TestDb)` named, in modules
/// `on_sqlite` and `on_postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::TestDb::new($crate::Backend::Sqlite).await).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::TestDb::new($crate::Backend::Postgres).await).await
                }
            )*
        }
    };
}
