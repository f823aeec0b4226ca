//! The audit log from the attacker's side: whoever can write the database (but has no key)
//! edits, deletes, inserts, reorders or truncates entries; verification says what and where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use niji_audit::{AuditLog, Problem};
use niji_pseudo::CustodianKey;
use sqlx::sqlite::SqlitePoolOptions;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A log of ten entries.
    async fn new() -> (Self, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let f = Self { dir };
        let log = f.open().await;
        for i in 1..=10 {
            log.append(
                "custodian",
                "ingest",
                &serde_json::json!({ "run": i, "rows": i * 100 }),
            )
            .await
            .unwrap();
        }
        (f, log)
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("data/niji.db")
    }

    fn anchor(&self) -> PathBuf {
        self.dir.path().join("keys/audit.anchor")
    }

    async fn open(&self) -> AuditLog {
        std::fs::create_dir_all(self.dir.path().join("data")).unwrap();
        AuditLog::open(
            &self.db(),
            &self.anchor(),
            &CustodianKey::from_bytes([7; 32]),
        )
        .await
        .unwrap()
    }

    /// Runs SQL against the database directly, as an intruder with file access would.
    async fn tamper(&self, sql: &str) {
        let url = format!("sqlite://{}", self.db().display());
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }

    async fn problems(&self) -> Vec<Problem> {
        self.open().await.verify().await.unwrap().problems
    }
}

async fn entry(log: &AuditLog, seq: i64) -> niji_audit::Entry {
    log.recent(100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.seq == seq)
        .unwrap()
}

/// The hash an attacker who knows the algorithm (but not the key) would compute.
fn attacker_hash(
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    detail: &str,
    prev: &str,
) -> String {
    use sha2::Digest;
    let joined = [seq.to_string().as_str(), at, actor, action, detail, prev].join("\u{1f}");
    niji_pseudo::hex32(&sha2::Sha256::digest(joined.as_bytes()).into())
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let (f, log) = Fixture::new().await;
    let v = log.verify().await.unwrap();
    assert!(v.is_intact(), "{:?}", v.problems);
    assert_eq!((v.entries, v.head, v.anchored), (10, Some(10), Some(10)));
    let recent = log.recent(3).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![10, 9, 8]
    );
    assert!(std::fs::read(f.anchor()).is_ok());
}

#[tokio::test]
async fn an_edited_entry_is_found() {
    let (f, _log) = Fixture::new().await;
    f.tamper(r#"UPDATE audit_log SET detail = '{"run":4,"rows":1}' WHERE seq = 4"#)
        .await;
    assert_eq!(f.problems().await, vec![Problem::Edited { seq: 4 }]);
}

#[tokio::test]
async fn an_edit_with_a_recomputed_hash_is_found_by_the_mac_and_the_chain() {
    let (f, log) = Fixture::new().await;
    let e = entry(&log, 4).await;
    let detail = r#"{"run":4,"rows":1}"#;
    let hash = attacker_hash(4, &e.at, &e.actor, &e.action, detail, &e.prev_hash);
    f.tamper(&format!(
        "UPDATE audit_log SET detail = '{detail}', hash = '{hash}' WHERE seq = 4"
    ))
    .await;
    assert_eq!(
        f.problems().await,
        vec![Problem::Forged { seq: 4 }, Problem::ChainBroken { seq: 5 }]
    );
}

#[tokio::test]
async fn a_deleted_entry_is_found() {
    let (f, _log) = Fixture::new().await;
    f.tamper("DELETE FROM audit_log WHERE seq = 6").await;
    assert_eq!(
        f.problems().await,
        vec![
            Problem::Missing { from: 6, to: 6 },
            Problem::ChainBroken { seq: 7 }
        ]
    );
}

#[tokio::test]
async fn an_inserted_entry_is_found() {
    let (f, log) = Fixture::new().await;
    // Make room after 5 and copy entry 5's valid hash and MAC into the new row.
    let e = entry(&log, 5).await;
    f.tamper("UPDATE audit_log SET seq = seq + 100 WHERE seq > 5; UPDATE audit_log SET seq = seq - 99 WHERE seq > 100").await;
    f.tamper(&format!(
        "INSERT INTO audit_log VALUES (6, '{}', 'intruder', 'export', '{{}}', '{}', '{}', '{}')",
        e.at, e.hash, e.hash, e.mac
    ))
    .await;
    let problems = f.problems().await;
    assert_eq!(
        problems.first(),
        Some(&Problem::Edited { seq: 6 }),
        "{problems:?}"
    );
    assert!(
        problems.contains(&Problem::Edited { seq: 7 }),
        "renumbered entries no longer match: {problems:?}"
    );
}

#[tokio::test]
async fn reordered_entries_are_found() {
    let (f, _log) = Fixture::new().await;
    f.tamper("UPDATE audit_log SET seq = -3 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = -3").await;
    let problems = f.problems().await;
    assert!(
        problems.contains(&Problem::Edited { seq: 3 })
            && problems.contains(&Problem::Edited { seq: 4 }),
        "{problems:?}"
    );
}

#[tokio::test]
async fn a_truncated_tail_is_found_through_the_anchor() {
    let (f, _log) = Fixture::new().await;
    f.tamper("DELETE FROM audit_log WHERE seq > 7").await;
    assert_eq!(
        f.problems().await,
        vec![Problem::Truncated {
            anchored: 10,
            last: 7
        }]
    );
}

#[tokio::test]
async fn a_rewritten_or_removed_anchor_is_found() {
    let (f, log) = Fixture::new().await;
    f.tamper("DELETE FROM audit_log WHERE seq > 7").await;
    let e7 = log.recent(1).await.unwrap().remove(0);
    std::fs::write(
        f.anchor(),
        format!("seq=7\nhash={}\nmac={}\n", e7.hash, "0".repeat(64)),
    )
    .unwrap();
    assert_eq!(f.problems().await, vec![Problem::AnchorForged]);
    std::fs::remove_file(f.anchor()).unwrap();
    assert_eq!(f.problems().await, vec![Problem::AnchorMissing]);
}

#[tokio::test]
async fn concurrent_appends_keep_one_dense_chain() {
    let dir = tempfile::tempdir().unwrap();
    let key = CustodianKey::from_bytes([9; 32]);
    let log = std::sync::Arc::new(
        AuditLog::open(&dir.path().join("a.db"), &dir.path().join("a.anchor"), &key)
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for t in 0..4 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                log.append("worker", "query", &serde_json::json!({ "task": t, "i": i }))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = log.verify().await.unwrap();
    assert!(v.is_intact(), "{:?}", v.problems);
    assert_eq!(v.head, Some(100));
}

#[tokio::test]
async fn the_database_never_holds_key_material() {
    let (f, _log) = Fixture::new().await;
    let key = CustodianKey::from_bytes([7; 32]);
    let audit_key = key.derive(niji_pseudo::Purpose::AuditLog);
    for path in [f.db(), f.anchor()] {
        let bytes = std::fs::read(&path).unwrap();
        for needle in [niji_pseudo::hex32(&[7; 32]), niji_pseudo::hex32(&audit_key)] {
            assert!(
                !bytes.windows(64).any(|w| w == needle.as_bytes()),
                "{}",
                path.display()
            );
        }
        assert!(
            !bytes.windows(32).any(|w| w == audit_key.as_ref()),
            "{}",
            Path::new(&path).display()
        );
    }
}
