//! `kill -9` of `niji serve` in the middle of a query and of output review's deciding vote, and
//! of `niji dataset build`, then a restart: the audit chain verifies, every output approved is
//! released exactly once (one decision, one audit entry, its file), never lost half-way, and
//! every dataset version is recorded once, audited once, with the files its record names.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use niji_testkit::http::request;
use serde_json::{Value, json};

use crate::{catalog_dir, niji, text};

/// The published disclosure rules, but a facility rule no cell passes: every cell it masks
/// rests on judgement, which two checkers may waive.
fn strict_facilities() -> String {
    let published =
        std::fs::read_to_string(catalog_dir().join("../policies/disclosure.toml")).expect("policy");
    let changed = published.replace("min_facilities = 3", "min_facilities = 1000");
    assert_ne!(changed, published);
    changed
}

const LIMITS: &str = "memory_per_query_mb = 512\ntimeout_seconds = 30\nconcurrent_per_project = 2\nconcurrent_overall = 4\nqueue_wait_ms = 2000\nmax_result_rows = 100000\n";

/// A seeded environment on disk (its key, store, platform database and policies), with the
/// users' API tokens.
fn seed(root: &Path) -> BTreeMap<String, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let policy = strict_facilities();
    rt.block_on(async {
        let mut seeded = niji_testkit::seed(
            root,
            &catalog_dir().join(".."),
            600,
            niji_testkit::Overrides {
                limits: Some(LIMITS),
                disclosure: Some(&policy),
                ..Default::default()
            },
        )
        .await
        .expect("seeded");
        let custodian = seeded
            .visiting
            .platform()
            .add_user("test", "cathy", niji_governance::UserRole::Custodian)
            .await
            .expect("a custodian");
        seeded.tokens.insert("cathy".into(), custodian);
        seeded.tokens
    })
}

pub(crate) fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `niji serve` as its own process on the seeded environment.
struct Server {
    child: Child,
    http: SocketAddr,
}

impl Server {
    fn start(root: &Path) -> Server {
        let (http, flight) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_niji"))
            .args([
                "serve",
                "--http",
                &http.to_string(),
                "--flight",
                &flight.to_string(),
            ])
            .envs(environment(root))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("niji serve starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while request(http, "GET", "/api/v1/health", &[], "").is_err() {
            assert!(Instant::now() < deadline, "niji serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, http }
    }

    fn kill(mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill -9");
        self.child.wait().expect("reaped");
    }

    fn session(&self, user: &str, token: &str) -> String {
        let (status, body) = call(
            self.http,
            "POST",
            "/api/v1/signin",
            None,
            &json!({"user": user, "token": token}),
        );
        assert_eq!(status, 200, "{user}: {body}");
        body["session"].as_str().expect("session").to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn environment(root: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("NIJI_DATA_DIR", root.join("data")),
        ("NIJI_KEY_FILE", root.join("keys/custodian.key")),
        ("NIJI_CATALOG", catalog_dir()),
        ("NIJI_POLICIES", root.join("policies")),
        ("NIJI_LIMITS", root.join("limits.toml")),
    ]
}

fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    session: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    try_call(addr, method, path, session, body).expect("an answer")
}

/// A call whose server may be killed under it: `None` when no answer came.
fn try_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    session: Option<&str>,
    body: &Value,
) -> Option<(u16, Value)> {
    let bearer = session.map(|s| format!("Bearer {s}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b));
    }
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let r = request(addr, method, path, &headers, &body).ok()?;
    Some((
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    ))
}

/// `niji audit verify` on the environment, as a custodian would run it after a crash.
fn audit_verifies(root: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_niji"))
        .args(["audit", "verify"])
        .envs(environment(root))
        .output()
        .expect("niji audit verify runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Rows of `sql` (with `bind` as its one parameter) from the platform database.
fn platform_rows<T>(root: &Path, sql: &'static str, bind: String) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let url = format!("sqlite://{}", root.join("data/niji.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("database");
        let rows = sqlx::query_as(sql)
            .bind(bind)
            .fetch_all(&pool)
            .await
            .expect("rows");
        pool.close().await;
        rows
    })
}

/// Audit entries of `action` whose detail names `key` as `value`.
fn entries_about(root: &Path, action: &'static str, (key, value): (&str, &str)) -> usize {
    let entries: Vec<(String,)> = platform_rows(
        root,
        "SELECT action FROM audit_log WHERE detail LIKE ?1",
        format!("%\"{key}\":\"{value}\"%"),
    );
    entries.iter().filter(|(a,)| a == action).count()
}

#[test]
fn a_server_killed_mid_query_and_mid_decision_restarts_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let tokens = seed(root);
    let mut server = Server::start(root);

    // A query killed while it runs (on dummy data, where a cross join runs to its time limit;
    // on real data it fails sooner).
    let alice = server.session("alice", &tokens["alice"]);
    let http = server.http;
    let runaway = std::thread::spawn(move || {
        try_call(
            http,
            "POST",
            "/api/v1/query",
            Some(&alice),
            &json!({"project": "copay-2022", "mode": "dummy", "sql": "SELECT max(a.points + b.days) FROM ndb.receipts a CROSS JOIN ndb.receipts b CROSS JOIN ndb.diagnoses c"}),
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    assert_eq!(
        runaway.join().expect("client"),
        None,
        "the client saw the connection drop, not an answer"
    );
    audit_verifies(root);
    server = Server::start(root);

    // The deciding approval, killed at moments from before it arrives to after it is done.
    let mut released_before_restart = 0;
    for (k, delay_ms) in [0u64, 1, 3, 6, 10, 15, 25, 40, 80, 200]
        .into_iter()
        .enumerate()
    {
        let http = server.http;
        let (alice, dora, erin) = (
            server.session("alice", &tokens["alice"]),
            server.session("dora", &tokens["dora"]),
            server.session("erin", &tokens["erin"]),
        );
        // A fresh output each round: the same table, asked a little differently.
        let sql = format!(
            "SELECT prefecture, count(*) AS receipts FROM ndb.receipts WHERE days > -{k} GROUP BY prefecture ORDER BY prefecture"
        );
        let (status, held) = call(
            http,
            "POST",
            "/api/v1/query",
            Some(&alice),
            &json!({"project": "copay-2022", "mode": "real", "sql": sql}),
        );
        assert_eq!(status, 200, "{held}");
        assert_eq!(held["status"], "suppressed", "{held}");
        let id = held["query_id"].as_str().expect("id").to_string();
        let path = format!("/api/v1/outputs/{id}");
        let (status, body) = call(
            http,
            "POST",
            &format!("{path}/request"),
            Some(&alice),
            &json!({"justification": "Receipts per prefecture are the denominators of the protocol."}),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) = call(
            http,
            "POST",
            &format!("{path}/approve"),
            Some(&dora),
            &json!({"reason": "cells rest on enough persons"}),
        );
        assert_eq!(status, 200, "{body}");
        let deciding = {
            let (path, erin) = (path.clone(), erin.clone());
            std::thread::spawn(move || {
                try_call(
                    http,
                    "POST",
                    &format!("{path}/approve"),
                    Some(&erin),
                    &json!({"reason": "agreed"}),
                )
            })
        };
        std::thread::sleep(Duration::from_millis(delay_ms));
        server.kill();
        if let Some((200, body)) = deciding.join().expect("client") {
            assert_eq!(body["review"], "released", "{body}");
            released_before_restart += 1;
        }
        audit_verifies(root);
        server = Server::start(root);

        // After the restart the output is released, or still awaits the vote that never
        // arrived, which erin then casts.
        let erin = server.session("erin", &tokens["erin"]);
        let (status, view) = call(server.http, "GET", &path, Some(&erin), &Value::Null);
        assert_eq!(status, 200, "{view}");
        if view["review"] != "released" {
            let (status, body) = call(
                server.http,
                "POST",
                &format!("{path}/approve"),
                Some(&erin),
                &json!({"reason": "agreed"}),
            );
            assert_eq!(
                status, 200,
                "round {k} ({delay_ms} ms): an approval recorded but never released? {body}"
            );
            assert_eq!(body["review"], "released", "{body}");
        }
        assert_eq!(
            entries_about(root, "output.released", ("output", &id)),
            1,
            "round {k}: released once, audited once"
        );
        assert_eq!(
            entries_about(root, "output.vote", ("output", &id)),
            2,
            "round {k}: each checker's vote once"
        );
        let author = server.session("alice", &tokens["alice"]);
        let (status, view) = call(server.http, "GET", &path, Some(&author), &Value::Null);
        assert_eq!(status, 200, "{view}");
        assert!(
            view["result"]["rows"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "the author gets the release: {view}"
        );
    }
    eprintln!("{released_before_restart} of 10 deciding votes were answered before the kill");
    audit_verifies(root);
    let shown = text(&niji(
        root,
        &[
            "--data-dir",
            "data",
            "--key-file",
            "keys/custodian.key",
            "audit",
            "verify",
        ],
    ));
    assert!(shown.contains("intact"), "{shown}");
    drop(server);
}

/// `niji dataset build` as the custodian, as its own process.
fn dataset_build(root: &Path, tokens: &BTreeMap<String, String>, name: &str) -> Command {
    let mut build = Command::new(env!("CARGO_BIN_EXE_niji"));
    build
        .args(["dataset", "--user", "cathy", "build", name])
        .env("NIJI_TOKEN", &tokens["cathy"])
        .envs(environment(root))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    build
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_dataset_build_killed_part_way_is_built_once_with_the_files_its_record_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let tokens = seed(root);
    // The datasets the seeded store builds (treatment-patterns is held, and the anonymised
    // extract needs a 難病DB registry of its own: neither is built here).
    let datasets = [
        "incidence",
        "natural-history",
        "patients",
        "severity-transitions",
        "treatment-sites",
    ];
    // How long a whole build takes here (the first dataset's, not killed), so that the kills
    // of the others land at fractions of it, from start-up to the record.
    let started = Instant::now();
    let first = dataset_build(root, &tokens, datasets[0])
        .output()
        .expect("a build");
    let whole = started.elapsed();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let mut finished_before_kill = 0;
    for (k, name) in datasets.into_iter().enumerate() {
        // The first was built whole above; the others are killed at 1/5 … 4/5 of a build.
        let delay = whole.mul_f64(k as f64 / datasets.len() as f64);
        let delay_ms = delay.as_millis();
        if k > 0 {
            let mut killed = dataset_build(root, &tokens, name).spawn().expect("a build");
            std::thread::sleep(delay);
            let pid = rustix::process::Pid::from_raw(killed.id() as i32).expect("pid");
            // It may have finished already: then there is nothing left to kill.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            if killed.wait().expect("reaped").success() {
                finished_before_kill += 1;
            }
        }
        audit_verifies(root);

        let again = dataset_build(root, &tokens, name)
            .output()
            .expect("a build");
        assert!(
            again.status.success(),
            "{name} after a kill at {delay_ms} ms: {}{}",
            String::from_utf8_lossy(&again.stdout),
            String::from_utf8_lossy(&again.stderr)
        );
        let versions: Vec<(String, String, String)> = platform_rows(
            root,
            "SELECT version, parquet_sha256, csv_sha256 FROM dataset_versions WHERE name = ?1",
            name.to_string(),
        );
        assert_eq!(versions.len(), 1, "{name}: one version recorded");
        let (version, parquet, csv) = &versions[0];
        let files = root.join("data/standard").join(name);
        assert_eq!(
            &sha256_of(&files.join(format!("{version}.parquet"))),
            parquet,
            "{name}"
        );
        assert_eq!(
            &sha256_of(&files.join(format!("{version}.csv"))),
            csv,
            "{name}"
        );
        assert_eq!(
            entries_about(root, "dataset.build", ("version", version)),
            1,
            "{name}: its build audited once"
        );
        // Asked again, the version stands: nothing is built, recorded or audited again.
        assert!(
            dataset_build(root, &tokens, name)
                .output()
                .expect("a build")
                .status
                .success()
        );
        assert_eq!(
            entries_about(root, "dataset.build", ("version", version)),
            1,
            "{name}"
        );
    }
    eprintln!(
        "{finished_before_kill} of {} killed builds finished before the kill (a whole build: {whole:?})",
        datasets.len() - 1
    );
    audit_verifies(root);
}
