//! End-to-end tests of the `niji` binary: real processes, real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use niji_store::Store;

mod ballista;
mod faults;
mod postgres;

fn catalog_dir() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("../../catalog")
        .canonicalize()
        .unwrap()
}

/// `niji` run in `cwd` with the repository's catalog.
fn niji(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_niji"))
        .current_dir(cwd)
        .env("NIJI_CATALOG", catalog_dir())
        .env("NIJI_POLICIES", catalog_dir().join("../policies"))
        .env("NIJI_LIMITS", catalog_dir().join("../sandbox/limits.toml"))
        .env_remove("NIJI_DATA_DIR")
        .env_remove("NIJI_KEY_FILE")
        .args(args)
        .output()
        .unwrap()
}

/// Runs `niji` and fails the test, showing its output, unless it succeeds.
fn succeed(cwd: &Path, args: &[&str]) -> Output {
    let out = niji(cwd, args);
    assert!(out.status.success(), "niji {args:?}: {}", text(&out));
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn key_hex(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("key="))
        .unwrap()
        .to_string()
}

#[test]
fn the_quick_start_job_runs_and_never_prints_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = niji(dir.path(), &["demo", "--persons", "3000"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("MEETS TARGET"), "{all}");
    assert!(all.contains("ndb.receipts"), "{all}");
    assert!(all.contains("person registry"), "{all}");
    let key_file = dir.path().join("niji-keys/custodian.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let hex = key_hex(&key_file);
    assert!(!all.contains(&hex[..16]));
    // Run every read-only command too and look for the key in what they print.
    for args in [
        &["keys", "show"][..],
        &["catalog"],
        &["catalog", "--format", "json"],
        &["linkage-report", "--format", "json"],
    ] {
        let o = niji(dir.path(), args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(
            !text(&o).contains(&hex[..16]),
            "{args:?} printed key material"
        );
    }
}

#[test]
fn keys_init_refuses_the_data_directory_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let inside = niji(
        dir.path(),
        &[
            "--data-dir",
            "d",
            "--key-file",
            "d/keys/k.key",
            "keys",
            "init",
        ],
    );
    assert!(!inside.status.success());
    assert!(
        text(&inside).contains("must not be inside the data directory"),
        "{}",
        text(&inside)
    );
    assert!(!dir.path().join("d/keys/k.key").exists());
    assert!(
        niji(dir.path(), &["--key-file", "k/k.key", "keys", "init"])
            .status
            .success()
    );
    let before = std::fs::read(dir.path().join("k/k.key")).unwrap();
    let again = niji(dir.path(), &["--key-file", "k/k.key", "keys", "init"]);
    assert!(!again.status.success() && text(&again).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(dir.path().join("k/k.key")).unwrap(), before);
}

#[test]
fn the_catalog_describes_every_column_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let json = niji(dir.path(), &["catalog", "--format", "json"]);
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let dbs = v["databases"].as_object().unwrap();
    let mut columns = 0;
    for db in dbs.values() {
        for t in db["tables"].as_array().unwrap() {
            for c in t["columns"].as_array().unwrap() {
                columns += 1;
                for field in ["name", "type", "class", "meaning_ja", "meaning_en"] {
                    assert!(c[field].as_str().is_some_and(|s| !s.is_empty()), "{c}");
                }
            }
        }
    }
    let table = niji(dir.path(), &["catalog"]);
    let table_text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table_text.contains(&format!("{columns} columns in {} databases", dbs.len())),
        "{table_text}"
    );
    assert!(
        table_text.contains("ndb.receipts.kana_name") && table_text.contains("direct_identifier")
    );
    let unknown = niji(dir.path(), &["catalog", "--db", "nope"]);
    assert!(!unknown.status.success());
}

#[test]
fn ingest_fails_closed_with_a_nonzero_exit_on_undescribed_input() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        niji(dir.path(), &["synth", "--persons", "300", "--out", "raw"])
            .status
            .success()
    );
    succeed(dir.path(), &["keys", "init"]);
    std::fs::write(
        dir.path().join("raw/raw/ndb/extra.csv"),
        "record_key,x\n1,2\n",
    )
    .unwrap();
    let out = niji(dir.path(), &["ingest", "--raw", "raw/raw"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("ndb/extra.csv"), "{}", text(&out));
}

const INGEST_KILLED: &[&str] = &[
    "--key-file",
    "k/c.key",
    "--data-dir",
    "killed",
    "ingest",
    "--raw",
    "raw/raw",
];

/// Kills `niji ingest` at several points with SIGKILL: whatever was published must verify
/// against its manifest, and a re-run must give the same tables as a clean run.
#[test]
fn an_ingest_killed_mid_way_never_exposes_a_partial_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    succeed(p, &["synth", "--persons", "40000", "--out", "raw"]);
    succeed(p, &["--key-file", "k/c.key", "keys", "init"]);
    let clean = niji(
        p,
        &[
            "--key-file",
            "k/c.key",
            "--data-dir",
            "clean",
            "ingest",
            "--raw",
            "raw/raw",
        ],
    );
    assert!(clean.status.success(), "{}", text(&clean));
    let catalog = niji_catalog::Catalog::load(&catalog_dir()).unwrap();
    let digests = |data: &str| {
        let store = Store::new(&p.join(data));
        let mut v = Vec::new();
        for db in catalog.databases.values() {
            for t in &db.tables {
                if store.manifest(&db.name, &t.name).unwrap().is_some() {
                    v.push((
                        format!("{}.{}", db.name, t.name),
                        store.verify(&db.name, &t.name).unwrap().content_digest,
                    ));
                }
            }
        }
        v
    };
    let mut saw_partial_run = false;
    for delay_ms in [150, 600, 1200, 2000] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_niji"))
            .current_dir(p)
            .env("NIJI_CATALOG", catalog_dir())
            .env("NIJI_POLICIES", catalog_dir().join("../policies"))
            .env("NIJI_LIMITS", catalog_dir().join("../sandbox/limits.toml"))
            .args(INGEST_KILLED)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        let status = child.wait().unwrap();
        saw_partial_run |= !status.success();
        // Every table a reader can see verifies: parts and manifest agree.
        let visible = digests("killed");
        let complete = digests("clean");
        for (name, digest) in &visible {
            let clean_digest = &complete.iter().find(|(n, _)| n == name).unwrap().1;
            assert_eq!(digest, clean_digest, "{name} is either absent or complete");
        }
    }
    assert!(
        saw_partial_run,
        "at least one run was killed before it finished"
    );
    let rerun = niji(p, INGEST_KILLED);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(digests("killed"), digests("clean"));
}

/// Key creation and every ingest are in the audit log; an edit made behind niji's back is
/// reported with its position and fails `niji audit verify`.
#[test]
fn actions_are_audited_and_tampering_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    succeed(p, &["synth", "--persons", "300", "--out", "raw"]);
    succeed(p, &["keys", "init"]);
    succeed(p, &["ingest", "--raw", "raw/raw"]);
    let ok = niji(p, &["audit", "verify"]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("2 entries, head 2, anchored at 2") && text(&ok).contains("intact"),
        "{}",
        text(&ok)
    );
    let show = text(&niji(p, &["audit", "show"]));
    assert!(
        show.contains("keys.init") && show.contains("ingest") && show.contains("ndb.receipts"),
        "{show}"
    );
    assert!(!show.contains(&key_hex(&p.join("niji-keys/custodian.key"))[..16]));
    assert!(
        p.join("niji-keys/audit.anchor").exists(),
        "the anchor lives beside the key, outside the data directory"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", p.join("niji-data/niji.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("UPDATE audit_log SET detail = '{}' WHERE seq = 2")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let bad = niji(p, &["audit", "verify"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("entry 2 was edited"), "{}", text(&bad));
}

/// From the CLI, as a researcher: a held result's JSON has no size, a failing real-data query
/// says nothing of why, and the custodian finds the cause by the query id.
#[test]
fn real_query_outcomes_tell_no_size_and_no_cause_on_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    succeed(dir.path(), &["demo", "--persons", "2000"]);
    let tokens = std::fs::read_to_string(dir.path().join("niji-keys/demo-tokens.txt")).unwrap();
    let token = tokens
        .lines()
        .find_map(|l| l.strip_prefix("alice="))
        .expect("alice's token")
        .to_string();
    // Limits under which a grouped real-data query fails: more rows than it may have.
    let limits = dir.path().join("limits.toml");
    std::fs::write(
        &limits,
        "memory_per_query_mb = 512\ntimeout_seconds = 60\nconcurrent_per_project = 2\nconcurrent_overall = 4\nqueue_wait_ms = 5000\nmax_result_rows = 5\n",
    )
    .unwrap();
    let query = |sql: &str| -> (Output, serde_json::Value) {
        let out = niji(
            dir.path(),
            &[
                "--limits",
                limits.to_str().unwrap(),
                "query",
                "--project",
                "copay-2022",
                "--user",
                "alice",
                "--token",
                &token,
                "--real",
                "--format",
                "json",
                "--sql",
                sql,
            ],
        );
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
        (out, json)
    };
    let (_, held) = query("SELECT pid, days FROM ndb.receipts WHERE prefecture = '13'");
    assert_eq!(held["status"], "held", "{held}");
    assert!(held.get("row_count").is_none(), "{held}");
    let (out, failed) = query("SELECT claim_ym, count(*) AS n FROM ndb.receipts GROUP BY 1");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(failed["status"], "error", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("could not be completed on real data") && !message.contains("rows"),
        "{message}"
    );
    let id = failed["query_id"].as_str().unwrap();
    let audit = succeed(dir.path(), &["audit", "show", "--query", id]);
    let audit = text(&audit);
    assert!(
        audit.contains("query.failed") && audit.contains("more than 5 rows"),
        "{audit}"
    );
}
