//! The CLI on a PostgreSQL platform database: `--database-url` moves users, projects and the
//! audit log there, and separate `niji` processes appending at once keep one dense chain.

use std::path::Path;

use super::{niji, succeed, text};

/// Two streams of `niji` processes, each adding users (every addition an audit entry), run at
/// once against one PostgreSQL; the chain stays dense and verifies, and no SQLite file appears.
#[test]
fn two_processes_keep_one_dense_chain_on_postgresql() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(niji_testdb::TestDb::new(niji_testdb::Backend::Postgres));
    let url = db.url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    succeed(p, &["--database-url", &url, "keys", "init"]);
    let add = |p: &Path, name: &str| {
        let out = niji(
            p,
            &[
                "--database-url",
                &url,
                "user",
                "add",
                "--name",
                name,
                "--role",
                "researcher",
            ],
        );
        assert!(out.status.success(), "{name}: {}", text(&out));
        // The token is printed once; the URL never is.
        assert!(!text(&out).contains(&url));
    };
    std::thread::scope(|s| {
        for stream in ["a", "b"] {
            s.spawn(move || {
                for i in 0..8 {
                    add(p, &format!("{stream}{i}"));
                }
            });
        }
    });
    let out = succeed(
        p,
        &[
            "--database-url",
            &url,
            "audit",
            "verify",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    let entries = v["entries"].as_u64().unwrap();
    assert!(entries >= 16, "{v}");
    assert_eq!(v["head"].as_u64(), Some(entries), "dense: {v}");
    assert!(
        !p.join("niji-data/niji.db").exists(),
        "the platform database is PostgreSQL, not a local file"
    );
    let listed = succeed(p, &["--database-url", &url, "user", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter(|l| l.contains("researcher"))
            .count(),
        16
    );
    // A bad URL is refused before anything is opened, and the password is not echoed.
    let bad = niji(
        p,
        &["--database-url", "mysql://u:hunter2@h/db", "user", "list"],
    );
    assert!(!bad.status.success());
    assert!(!text(&bad).contains("hunter2"), "{}", text(&bad));
}
