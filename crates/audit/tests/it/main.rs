//! The audit log from the attacker's side: whoever can write the database (but has no key)
//! edits, deletes, inserts, reorders or truncates entries; verification says what and where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use niji_audit::{AuditLog, Backend, Database, DatabaseUrl, Problem};
use niji_pseudo::CustodianKey;
use niji_testdb::TestDb;

struct Fixture {
    db: TestDb,
}

impl Fixture {
    /// A log of ten entries.
    async fn new(db: TestDb) -> (Self, AuditLog) {
        let f = Self { db };
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

    fn url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(self.db.url()).unwrap()
    }

    fn anchor(&self) -> PathBuf {
        self.db.dir().join("keys/audit.anchor")
    }

    async fn open(&self) -> AuditLog {
        AuditLog::open(
            &self.url(),
            &self.anchor(),
            &CustodianKey::from_bytes([7; 32]),
        )
        .await
        .unwrap()
    }

    /// Runs SQL against the database directly, as an intruder with write access would.
    async fn tamper(&self, sql: &str) {
        let db = Database::connect(&self.url()).await.unwrap();
        for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                .execute(db.pool())
                .await
                .unwrap();
        }
        db.close().await;
    }

    /// Everything the database holds of the log, as an intruder reading it would see it: the
    /// SQLite file's bytes, or every PostgreSQL row as text.
    async fn stored_bytes(&self) -> Vec<u8> {
        let url = self.url();
        match url.backend() {
            Backend::Sqlite => {
                // The write-ahead log too: recent pages live there until a checkpoint.
                let mut bytes = std::fs::read(self.db.dir().join("niji.db")).unwrap();
                bytes.extend(std::fs::read(self.db.dir().join("niji.db-wal")).unwrap_or_default());
                bytes
            }
            Backend::Postgres => {
                let db = Database::connect(&url).await.unwrap();
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT seq || at || actor || action || detail || prev_hash || hash || mac FROM audit_log",
                )
                .fetch_all(db.pool())
                .await
                .unwrap();
                db.close().await;
                rows.into_iter().flat_map(|(r,)| r.into_bytes()).collect()
            }
        }
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

async fn an_untouched_log_verifies(db: TestDb) {
    let (f, log) = Fixture::new(db).await;
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

async fn an_edited_entry_is_found(db: TestDb) {
    let (f, _log) = Fixture::new(db).await;
    f.tamper(r#"UPDATE audit_log SET detail = '{"run":4,"rows":1}' WHERE seq = 4"#)
        .await;
    assert_eq!(f.problems().await, vec![Problem::Edited { seq: 4 }]);
}

async fn an_edit_with_a_recomputed_hash_is_found_by_the_mac_and_the_chain(db: TestDb) {
    let (f, log) = Fixture::new(db).await;
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

async fn a_deleted_entry_is_found(db: TestDb) {
    let (f, _log) = Fixture::new(db).await;
    f.tamper("DELETE FROM audit_log WHERE seq = 6").await;
    assert_eq!(
        f.problems().await,
        vec![
            Problem::Missing { from: 6, to: 6 },
            Problem::ChainBroken { seq: 7 }
        ]
    );
}

async fn an_inserted_entry_is_found(db: TestDb) {
    let (f, log) = Fixture::new(db).await;
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

async fn reordered_entries_are_found(db: TestDb) {
    let (f, _log) = Fixture::new(db).await;
    f.tamper("UPDATE audit_log SET seq = -3 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = -3").await;
    let problems = f.problems().await;
    assert!(
        problems.contains(&Problem::Edited { seq: 3 })
            && problems.contains(&Problem::Edited { seq: 4 }),
        "{problems:?}"
    );
}

async fn a_truncated_tail_is_found_through_the_anchor(db: TestDb) {
    let (f, _log) = Fixture::new(db).await;
    f.tamper("DELETE FROM audit_log WHERE seq > 7").await;
    assert_eq!(
        f.problems().await,
        vec![Problem::Truncated {
            anchored: 10,
            last: 7
        }]
    );
}

async fn a_rewritten_or_removed_anchor_is_found(db: TestDb) {
    let (f, log) = Fixture::new(db).await;
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

/// Four writers on each of two logs with pools of their own (as two processes would have)
/// append at once: one dense chain, every entry MACed.
async fn concurrent_appends_keep_one_dense_chain(db: TestDb) {
    let url = DatabaseUrl::parse(db.url()).unwrap();
    let key = CustodianKey::from_bytes([9; 32]);
    let mut logs = Vec::new();
    for anchor in ["a.anchor", "b.anchor"] {
        let log = AuditLog::open(&url, &db.dir().join(anchor), &key)
            .await
            .unwrap();
        logs.push(std::sync::Arc::new(log));
    }
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = logs[t % 2].clone();
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
    let v = logs[0].verify().await.unwrap();
    assert_eq!(v.head, Some(200));
    // The other log's anchor may lag behind the head (the two take turns), never lead it.
    assert!(v.is_intact(), "{:?}", v.problems);
    let v = logs[1].verify().await.unwrap();
    assert!(v.is_intact(), "{:?}", v.problems);
}

async fn the_database_never_holds_key_material(db: TestDb) {
    let (f, _log) = Fixture::new(db).await;
    let key = CustodianKey::from_bytes([7; 32]);
    let audit_key = key.derive(niji_pseudo::Purpose::AuditLog);
    let stored = [f.stored_bytes().await, std::fs::read(f.anchor()).unwrap()];
    for bytes in stored {
        for needle in [niji_pseudo::hex32(&[7; 32]), niji_pseudo::hex32(&audit_key)] {
            assert!(!bytes.windows(64).any(|w| w == needle.as_bytes()));
        }
        assert!(!bytes.windows(32).any(|w| w == audit_key.as_ref()));
    }
}

niji_testdb::on_both_backends!(
    an_untouched_log_verifies,
    an_edited_entry_is_found,
    an_edit_with_a_recomputed_hash_is_found_by_the_mac_and_the_chain,
    a_deleted_entry_is_found,
    an_inserted_entry_is_found,
    reordered_entries_are_found,
    a_truncated_tail_is_found_through_the_anchor,
    a_rewritten_or_removed_anchor_is_found,
    concurrent_appends_keep_one_dense_chain,
    the_database_never_holds_key_material,
);
