//! The platform's SQL database: SQLite embedded by default, PostgreSQL when a URL says so.
//! Both go through sqlx's Any driver with the same migrations, so every query is written once
//! in the SQL both accept (`$n` parameters, `ON CONFLICT`, no autoincrement, no BOOLEAN).
//! What differs is how a writer takes the table it appends to: [`Database::begin_write`].

use std::fmt;
use std::path::Path;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, ConnectOptions, Executor, Transaction};

/// Which server holds the platform database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where the platform database is. A PostgreSQL URL may carry a password, so neither `Debug`
/// nor `Display` shows more than the backend, host and database name.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

/// A URL that names no database niji can use.
#[derive(Debug, thiserror::Error)]
#[error("database URL: {0}")]
pub struct BadDatabaseUrl(String);

impl DatabaseUrl {
    /// The SQLite file at `path`, created when missing.
    pub fn sqlite(path: &Path) -> Self {
        let url = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy()
            .to_string();
        Self {
            url,
            backend: Backend::Sqlite,
        }
    }

    /// `postgres://…`, `postgresql://…` or `sqlite://…`.
    pub fn parse(url: &str) -> Result<Self, BadDatabaseUrl> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        let backend = match scheme {
            "postgres" | "postgresql" => Backend::Postgres,
            "sqlite" => Backend::Sqlite,
            _ => {
                return Err(BadDatabaseUrl(format!(
                    "the scheme must be postgres:// or sqlite:// (got {:?})",
                    scheme.chars().take(16).collect::<String>()
                )));
            }
        };
        Ok(Self {
            url: url.to_string(),
            backend,
        })
    }

    /// The default: the SQLite file `niji.db` in the data directory.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::sqlite(&data_dir.join("niji.db"))
    }

    /// `url` when one was given, else the default in the data directory.
    pub fn or_in_data_dir(url: Option<&Self>, data_dir: &Path) -> Self {
        url.cloned().unwrap_or_else(|| Self::in_data_dir(data_dir))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The full URL, for connecting only (never for printing).
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// Backend, host and database, without user or password.
    fn shown(&self) -> String {
        let rest = self.url.split_once("://").map(|(_, r)| r).unwrap_or("");
        let rest = rest.split('?').next().unwrap_or("");
        let host_and_db = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
        format!("{}://{host_and_db}", self.backend.as_str())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.shown())
    }
}

/// A connection pool on the platform database, knowing which backend it talks to.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

impl Database {
    /// Connects. SQLite gets WAL (readers never block the appender), foreign keys and a busy
    /// timeout (the CLI and the server are separate processes and take turns).
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.expose().parse()?;
        let backend = url.backend();
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that holds `table` against every other writer until it ends, in this
    /// process or another: SQLite takes the database's write lock at `BEGIN IMMEDIATE`;
    /// PostgreSQL locks the table in EXCLUSIVE mode (readers go on). What a writer reads after
    /// this (the last sequence number, the highest id) stays true until it commits.
    pub async fn begin_write(
        &self,
        table: &'static str,
    ) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                let lock = format!("LOCK TABLE {table} IN EXCLUSIVE MODE");
                sqlx::query(sqlx::AssertSqlSafe(lock))
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        let url =
            DatabaseUrl::parse("postgres://niji:s3cret-pw@db.example:5432/niji?sslmode=require")
                .expect("parses");
        for shown in [url.to_string(), format!("{url:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(!shown.contains("niji:"), "{shown}");
            assert!(shown.contains("db.example:5432/niji"), "{shown}");
        }
        assert_eq!(url.backend(), Backend::Postgres);
    }

    #[test]
    fn only_known_schemes_are_accepted() {
        let err = DatabaseUrl::parse("mysql://u:pw@h/db").expect_err("refused");
        assert!(!err.to_string().contains("pw"));
        assert!(DatabaseUrl::parse("sqlite:///tmp/x.db").is_ok());
        let default = DatabaseUrl::in_data_dir(Path::new("/tmp/d"));
        assert_eq!(default.backend(), Backend::Sqlite);
        assert!(default.expose().contains("/tmp/d/niji.db"));
    }
}
