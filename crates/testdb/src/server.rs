//! A PostgreSQL server for the tests of one process.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Connection as _;

/// The server: started on first use, stopped when the process that started it ends.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    /// The keeper shell waits on this pipe; when the process ends the pipe closes, and the
    /// keeper stops the server (fast shutdown) and removes its directory.
    _keeper: Mutex<(Child, ChildStdin)>,
}

const USER: &str = "niji";

/// Where Debian keeps the server binaries when they are not on the PATH.
fn binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    dirs.extend(versions.into_iter().rev());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The command line that runs `program` as the server's user. PostgreSQL refuses to run as
/// root: then it runs as the `postgres` user Debian's package creates, through `setpriv`
/// (which execs, so signals reach the server itself).
fn as_server_user(program: &Path) -> Vec<String> {
    let mut argv = Vec::new();
    if rustix::process::geteuid().is_root() {
        argv.extend(
            [
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
            ]
            .map(String::from),
        );
    }
    argv.push(program.display().to_string());
    argv
}

fn command(argv: &[String]) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// `argv` for `sh`, each word in single quotes.
fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl PostgresServer {
    /// The process's server, started on first call. Panics with what to do when PostgreSQL is
    /// not installed or does not start.
    pub fn shared() -> &'static PostgresServer {
        static SERVER: OnceLock<PostgresServer> = OnceLock::new();
        SERVER.get_or_init(|| Self::start().unwrap_or_else(|e| panic!("{e}")))
    }

    fn start() -> Result<Self, String> {
        let missing = "PostgreSQL's server binaries (initdb, postgres) are not installed: \
                       run scripts/setup-postgres.sh";
        let initdb = binary("initdb").ok_or(missing)?;
        let postgres = binary("postgres").ok_or(missing)?;
        let dir = tempfile::Builder::new()
            .prefix("niji-pg-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?
            .keep();
        if rustix::process::geteuid().is_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !chown.success() {
                return Err("chown of the server's directory to postgres failed".into());
            }
        }
        let data = dir.join("data").display().to_string();
        let mut init = as_server_user(&initdb);
        init.extend(
            [
                "-D",
                &data,
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "-N",
            ]
            .map(String::from),
        );
        let out = command(&init)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = free_port();
        let mut server = as_server_user(&postgres);
        let socket_dir = dir.display().to_string();
        server.extend(
            [
                "-D",
                &data,
                "-p",
                &port.to_string(),
                "-k",
                &socket_dir,
                "-h",
                "127.0.0.1",
            ]
            .map(String::from),
        );
        // A test server: durability buys nothing here.
        for setting in [
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ] {
            server.extend(["-c".to_string(), setting.to_string()]);
        }
        // The keeper: starts the server, waits for its stdin to close, stops it, cleans up.
        let script = format!(
            "{} >\"$1/server.log\" 2>&1 & pid=$!; read _; kill -INT $pid; wait $pid; rm -rf \"$1\"",
            shell_line(&server)
        );
        let mut keeper = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&dir)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting postgres: {e}"))?;
        let stdin = keeper.stdin.take().ok_or("the keeper's stdin")?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                return Err(format!("postgres did not listen within 30 s: {log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            port,
            _keeper: Mutex::new((keeper, stdin)),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL. Retries while the server is still
    /// starting up (it listens before it accepts).
    pub async fn create_database(&self, name: &str) -> String {
        let started = Instant::now();
        let mut conn = loop {
            match sqlx::PgConnection::connect(&self.url("postgres")).await {
                Ok(conn) => break conn,
                Err(e) if started.elapsed() > Duration::from_secs(30) => {
                    panic!("postgres on port {} does not accept: {e}", self.port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let create = format!("CREATE DATABASE {name}");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let _ = conn.close().await;
        self.url(name)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Ok(mut keeper) = self._keeper.lock() {
            let _ = keeper.1.write_all(b"\n");
            let _ = keeper.0.wait();
        }
    }
}
