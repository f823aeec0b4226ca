//! The same checked queries on Ballista standalone (a scheduler and two executors in this
//! process, on loopback) as on DataFusion in this process, over two copies of one seeded
//! environment: every result, mask, verdict and refusal is identical, including the attacks
//! disclosure control must hold, and nothing niji plants in a plan fails to travel.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use niji_ballista::{BallistaEngine, StandaloneSize};
use niji_sandbox::{
    Engine, LocalEngine, Mode, QueryOutcome, QueryRequest, Scope, Settings, Status, Visiting,
};
use niji_testkit::{Overrides, PROJECT, SUITE};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Queries disclosure control answers, masks, holds or refuses: small cells, dominance,
/// differencing, row-level and pseudonym reads, record keys, joins, subqueries, expressions
/// made total, and a workspace table made and read.
const ATTACKS: &[&str] = &[
    "SELECT prefecture, count(*) AS receipts, min(points) AS lo, max(points) AS hi, median(points) AS mid, avg(points) AS mean FROM ndb.receipts GROUP BY prefecture",
    "SELECT prefecture, count(*) AS n FROM ndb.receipts GROUP BY prefecture ORDER BY count(DISTINCT pid), prefecture LIMIT 1",
    "SELECT avg(points) AS n FROM ndb.receipts WHERE pid IN (SELECT pid FROM ndb.receipts GROUP BY pid ORDER BY pid LIMIT 2)",
    "SELECT * FROM ndb.receipts LIMIT 5",
    "SELECT claim_ym, days FROM ndb.receipts ORDER BY points DESC LIMIT 1",
    "SELECT pid, count(*) AS n FROM ndb.receipts GROUP BY pid",
    "SELECT max(pid) AS p FROM ndb.receipts",
    "SELECT record_key, count(*) AS n FROM ndb.receipts GROUP BY record_key",
    "SELECT icd10, count(*) AS n FROM ndb.diagnoses GROUP BY icd10",
    "SELECT substr(d.icd10, 1, 1) AS chapter, count(DISTINCT r.pid) AS persons FROM ndb.diagnoses d JOIN ndb.receipts r ON d.receipt_key = r.record_key GROUP BY substr(d.icd10, 1, 1)",
    "SELECT count(*) AS n, count(DISTINCT pid) AS persons FROM ndb.receipts",
    "SELECT count(*) AS n FROM ndb.receipts WHERE pid <> (SELECT min(pid) FROM ndb.receipts)",
    "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex",
    "SELECT count(*) AS n FROM ndb.receipts WHERE prefecture <> '13'",
    "SELECT prefecture, sum(points) AS points FROM ndb.receipts GROUP BY prefecture",
    "SELECT prefecture, sex, count(DISTINCT pid) AS persons, sum(days) AS days FROM ndb.receipts WHERE claim_ym BETWEEN 202204 AND 202209 GROUP BY prefecture, sex",
    "SELECT sum(points / (days - days)) AS z, count(*) AS n FROM ndb.receipts",
    "SELECT count(*) AS n FROM ndb.receipts WHERE CAST(prefecture AS INT) > 0",
    "CREATE TABLE work.per_person AS SELECT pid, count(*) AS n FROM ndb.receipts GROUP BY pid",
    "SELECT n, count(*) AS persons FROM work.per_person GROUP BY n",
];

/// What an outcome shows anyone, but its id: status, message, columns, and each row with the
/// cells masked in it and why (in order when the query orders them; sorted otherwise, as an
/// engine may give rows in any order), and the totals.
fn shown(o: &QueryOutcome, ordered: bool) -> String {
    let mut rows: Vec<String> = niji_testkit::text_rows(&o.batches)
        .into_iter()
        .map(|row| row.join(" | "))
        .collect();
    for cell in &o.suppressed {
        let row = rows.get_mut(cell.row).expect("a masked cell's row");
        row.push_str(&format!(" [{} masked: {}]", cell.column, cell.reason));
    }
    if !ordered {
        rows.sort();
    }
    format!(
        "{:?} {:?}\n{}\ncolumns {:?}\n{}\nmasked {}\nwithheld {}\ntotals {:?}",
        o.status,
        o.failure,
        o.message.replace(&o.query_id, "<id>"),
        o.columns(),
        rows.join("\n"),
        o.suppressed.len(),
        o.small_groups_withheld,
        o.totals
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

async fn open(settings: Settings, engine: Arc<dyn Engine>) -> Visiting {
    Visiting::open(settings, engine, niji_testkit::dummy_store())
        .await
        .expect("the Visiting environment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballista_standalone_gives_every_result_mask_and_verdict_datafusion_gives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let seeded = niji_testkit::seed(&a, &repo(), 800, Overrides::default())
        .await
        .expect("seeded");
    let settings = seeded.settings.clone();
    // Closed, the platform database is whole in its file (no write-ahead log beside it).
    seeded.visiting.platform().db().database().close().await;
    drop(seeded);
    // The same key, store and platform database for each engine: the release ledger each
    // query adds to is its engine's own.
    copy_dir(&a, &b);
    let moved = |p: &Path| b.join(p.strip_prefix(&a).expect("under the seed"));
    let settings_b = Settings {
        data_dir: moved(&settings.data_dir),
        key_file: moved(&settings.key_file),
        ..settings.clone()
    };
    let ballista = Arc::new(
        BallistaEngine::standalone(StandaloneSize {
            memory_mb: 1024,
            ..Default::default()
        })
        .await
        .expect("Ballista standalone"),
    );
    let local = open(settings, Arc::new(LocalEngine)).await;
    let distributed = open(settings_b, ballista.clone()).await;

    let queries = SUITE
        .iter()
        .map(|(_, sql)| *sql)
        .chain(ATTACKS.iter().copied());
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for mode in [Mode::Dummy, Mode::Real] {
        for sql in queries.clone() {
            let request = QueryRequest {
                user: "alice".into(),
                scope: Scope::project(PROJECT),
                mode,
                sql: sql.into(),
                via: "test",
            };
            let (here, there) = (
                local.query(&request).await,
                distributed.query(&request).await,
            );
            let ordered = sql.contains("ORDER BY");
            assert_eq!(
                shown(&there, ordered),
                shown(&here, ordered),
                "{mode:?}: {sql}"
            );
            *statuses.entry(format!("{:?}", here.status)).or_default() += 1;
        }
    }
    eprintln!(
        "outcomes compared: {statuses:?}; plans sent to Ballista: {}",
        ballista.plans_sent()
    );
    // Not a comparison of two failures: results were released, masked or held, and refused.
    for status in [
        Status::Ok,
        Status::Released,
        Status::Suppressed,
        Status::Refused,
    ] {
        assert!(
            statuses.contains_key(&format!("{status:?}")),
            "no {status:?} among {statuses:?}"
        );
    }
    assert!(
        ballista.plans_sent() >= 2 * SUITE.len() as u64,
        "the plans ran on Ballista"
    );
}
