//! Projects: views, pseudonyms, row filters, real results held, the workspace, close-out,
//! and the audit trail of all of it.

use std::collections::BTreeSet;
use std::sync::Arc;

use niji_governance::{Period, ProjectSpec};
use niji_sandbox::{Mode, Status};

use crate::fixture::{Fixture, OTHER, PROJECT, column, narrow_project, spec_text};

async fn pids(f: &Fixture, user: &str, project: &str, table: &str) -> BTreeSet<String> {
    let o = f
        .query_as(
            user,
            project,
            Mode::Dummy,
            &format!("SELECT DISTINCT pid FROM {table} WHERE pid IS NOT NULL"),
        )
        .await;
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    column(&o, "pid").into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudonyms_link_within_a_group_only_and_differ_across_projects() {
    let f = Fixture::new(None).await;
    // copay-2022 links ndb and kaigo; other-study (same tables) links nothing.
    let ndb = pids(&f, "alice", PROJECT, "ndb.receipts").await;
    let kaigo = pids(&f, "alice", PROJECT, "kaigo.claims").await;
    assert!(
        ndb.len() > 100 && kaigo.len() > 10,
        "{} {}",
        ndb.len(),
        kaigo.len()
    );
    let linked = ndb.intersection(&kaigo).count();
    assert!(
        linked * 10 > kaigo.len() * 9,
        "linked group shares pseudonyms ({linked} of {})",
        kaigo.len()
    );
    let other_ndb = pids(&f, "carol", OTHER, "ndb.receipts").await;
    let other_kaigo = pids(&f, "carol", OTHER, "kaigo.claims").await;
    assert_eq!(other_ndb.len(), ndb.len(), "same persons, other pseudonyms");
    assert_eq!(
        ndb.intersection(&other_ndb).count(),
        0,
        "projects cannot be joined"
    );
    assert_eq!(
        other_ndb.intersection(&other_kaigo).count(),
        0,
        "unlinked databases cannot be joined"
    );
    // Pseudonyms are fixed-width 64-bit values, not identifiers.
    let o = f
        .query(Mode::Dummy, "SELECT pid FROM ndb.receipts LIMIT 1")
        .await;
    assert_eq!(o.columns()[0].data_type, "UInt64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn period_and_cohort_filters_decide_the_rows() {
    let f = Fixture::new(None).await;
    narrow_project(&f).await;
    let q = |sql: &'static str| {
        let f = &f;
        async move {
            let o = f.query_as("alice", "narrow", Mode::Dummy, sql).await;
            assert_eq!(o.status, Status::Ok, "{sql}: {}", o.message);
            column(&o, "v")
        }
    };
    assert_eq!(
        q("SELECT min(claim_ym) AS v FROM ndb.receipts").await,
        ["202201"]
    );
    assert_eq!(
        q("SELECT max(claim_ym) AS v FROM ndb.receipts").await,
        ["202206"]
    );
    assert_eq!(
        q("SELECT max(service_ym) AS v FROM kaigo.claims").await,
        ["202206"]
    );
    // Every person left has an E11 diagnosis in the period.
    let without = q("SELECT count(DISTINCT r.pid) AS v FROM ndb.receipts r WHERE r.pid NOT IN (SELECT r2.pid FROM ndb.receipts r2 JOIN ndb.diagnoses d ON d.receipt_key = r2.record_key WHERE d.icd10 LIKE 'E11%')").await;
    assert_eq!(without, ["0"]);
    let cohort: u64 = q("SELECT count(DISTINCT pid) AS v FROM ndb.receipts").await[0]
        .parse()
        .expect("n");
    let wide = f
        .query(
            Mode::Dummy,
            "SELECT count(DISTINCT pid) AS v FROM ndb.receipts",
        )
        .await;
    let all: u64 = column(&wide, "v")[0].parse().expect("n");
    assert!(cohort > 0 && cohort < all, "cohort {cohort} of {all}");
    // Details follow their receipts: none of a receipt outside the period.
    let details = q("SELECT count(*) AS v FROM ndb.diagnoses d LEFT JOIN ndb.receipts r ON d.receipt_key = r.record_key WHERE r.record_key IS NULL").await;
    assert_eq!(details, ["0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rows_are_held_and_the_workspace_stays_inside() {
    let f = Fixture::new(None).await;
    let o = f
        .query(
            Mode::Real,
            "SELECT pid, claim_ym, days FROM ndb.receipts WHERE days > 3",
        )
        .await;
    assert_eq!(o.status, Status::Held, "{}", o.message);
    assert!(o.message.contains("row-level"), "{}", o.message);
    assert!(o.batches.is_empty(), "no real rows leave");
    assert!(o.row_count.is_none(), "a held result's size is not told");
    let held = f
        .data_dir()
        .join("projects")
        .join(PROJECT)
        .join("real/held");
    assert!(held.join(format!("{}.parquet", o.query_id)).exists());
    let json = o.to_json();
    assert_eq!(json["status"], "held");
    assert_eq!(json["rows"].as_array().map(Vec::len), Some(0));

    // Workspace: created by niji, visible to the project's members only.
    let make = "CREATE TABLE work.per_person AS SELECT pid, sum(days) AS days FROM ndb.receipts GROUP BY pid";
    let o = f.query(Mode::Real, make).await;
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    assert!(
        f.data_dir()
            .join("projects")
            .join(PROJECT)
            .join("real/work/per_person.parquet")
            .exists()
    );
    let o = f.query(Mode::Real, make).await;
    assert_eq!(o.status, Status::Refused, "no silent overwrite");
    let o = f
        .query(
            Mode::Real,
            &make.replace("CREATE TABLE", "CREATE OR REPLACE TABLE"),
        )
        .await;
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    let o = f
        .query_as(
            "bob",
            PROJECT,
            Mode::Real,
            "SELECT count(*) FROM work.per_person WHERE days > 0",
        )
        .await;
    assert_eq!(
        o.status,
        Status::Held,
        "a member reads it; the result is held: {}",
        o.message
    );
    let o = f
        .query_as(
            "carol",
            OTHER,
            Mode::Real,
            "SELECT count(*) FROM work.per_person",
        )
        .await;
    assert_eq!(o.status, Status::Refused);
    // Real and dummy workspaces are apart.
    let o = f
        .query(Mode::Dummy, "SELECT count(*) FROM work.per_person")
        .await;
    assert_eq!(o.status, Status::Refused);

    // Close: the workspace and held results are deleted and the deletion is recorded.
    let cert = f
        .visiting
        .close_project("test", PROJECT)
        .await
        .expect("close");
    assert!(
        cert.files
            .iter()
            .any(|x| x.path.ends_with("per_person.parquet")),
        "{cert:?}"
    );
    assert!(cert.files.iter().all(|x| x.sha256.len() == 64));
    assert!(!f.data_dir().join("projects").join(PROJECT).exists());
    let o = f.query(Mode::Dummy, "SELECT 1").await;
    assert_eq!(
        o.status,
        Status::Refused,
        "a closed project refuses everyone"
    );
    let log = f
        .visiting
        .platform()
        .audit()
        .recent(100)
        .await
        .expect("audit");
    let close = log
        .iter()
        .find(|e| e.action == "project.close")
        .expect("close logged");
    assert!(close.detail.contains("per_person.parquet"));
    assert!(
        f.visiting
            .platform()
            .audit()
            .verify()
            .await
            .expect("verify")
            .is_intact()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_is_audited_without_secrets() {
    let f = Fixture::new(None).await;
    let ok = f
        .query(
            Mode::Dummy,
            "SELECT claim_ym, count(*) AS n FROM ndb.receipts GROUP BY claim_ym",
        )
        .await;
    assert_eq!(ok.status, Status::Ok);
    let bad = f.query(Mode::Dummy, "SELECT id5 FROM ndb.receipts").await;
    assert_eq!(bad.status, Status::Refused);
    assert!(
        f.visiting
            .platform()
            .sign_in("alice", "niji_wrong", "test")
            .await
            .is_err()
    );
    let log = f
        .visiting
        .platform()
        .audit()
        .recent(100)
        .await
        .expect("audit");
    let entry = log
        .iter()
        .find(|e| e.action == "query" && e.detail.contains(&ok.query_id))
        .expect("query logged");
    let detail: serde_json::Value = serde_json::from_str(&entry.detail).expect("json");
    assert_eq!(detail["outcome"], "ok");
    assert_eq!(detail["tables"][0], "ndb.receipts");
    assert_eq!(detail["plan_digest"].as_str().map(str::len), Some(64));
    assert_eq!(detail["result_digest"].as_str().map(str::len), Some(64));
    assert_eq!(
        Some(detail["rows"].as_u64().expect("rows") as usize),
        ok.row_count
    );
    assert!(
        detail["sql"]
            .as_str()
            .is_some_and(|s| s.contains("GROUP BY claim_ym"))
    );
    assert!(
        log.iter().any(|e| e.action == "query"
            && e.detail.contains("refused")
            && e.detail.contains("id5"))
    );
    assert!(
        log.iter()
            .any(|e| e.action == "signin" && e.detail.contains("refused"))
    );
    assert!(log.iter().any(|e| e.action == "project.create"));
    for secret in [&f.alice, &f.bob, &f.carol] {
        assert!(
            log.iter().all(|e| !e.detail.contains(secret.as_str())),
            "no token in the log"
        );
    }
    assert!(
        f.visiting
            .platform()
            .audit()
            .verify()
            .await
            .expect("verify")
            .is_intact()
    );
}

/// One way of spoiling a valid spec.
type SpecChange = dyn Fn(&mut ProjectSpec);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_that_cannot_be_resolved_are_refused() {
    let f = Fixture::new(None).await;
    let base = ProjectSpec::from_toml(&spec_text()).expect("spec");
    let cases: Vec<(&str, Box<SpecChange>)> = vec![
        (
            "linkage identifier",
            Box::new(|s| s.tables[0].columns.push("id5".into())),
        ),
        (
            "direct identifier",
            Box::new(|s| s.tables[0].columns.push("kana_name".into())),
        ),
        (
            "not in the catalog",
            Box::new(|s| s.tables[0].columns.push("nope".into())),
        ),
        (
            "not in the catalog",
            Box::new(|s| s.tables[0].table = "ndb.nope".into()),
        ),
        (
            "two linkage groups",
            Box::new(|s| s.linkage.push(vec!["ndb".into(), "reference".into()])),
        ),
        (
            "no approved table",
            Box::new(|s| s.linkage = vec![vec!["ndb".into(), "dpc".into()]]),
        ),
        (
            "not YYYY-MM",
            Box::new(|s| {
                s.period = Some(Period {
                    from: "2022".into(),
                    to: "2023-01".into(),
                })
            }),
        ),
        ("user", Box::new(|s| s.members[1].user = "nobody".into())),
        (
            "already expired",
            Box::new(|s| s.expires = "2001-01-01".into()),
        ),
    ];
    for (i, (want, change)) in cases.iter().enumerate() {
        let mut spec = base.clone();
        spec.id = format!("bad-{i}");
        change(&mut spec);
        let err = f
            .visiting
            .platform()
            .create_project("test", &spec, f.visiting.catalog())
            .await
            .expect_err(want);
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
    let o = f.query_as("alice", "bad-0", Mode::Dummy, "SELECT 1").await;
    assert_eq!(o.status, Status::Refused, "nothing half-created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_follow_a_store_published_anew() {
    let f = Fixture::new(None).await;
    let sql = "SELECT max(claim_ym) AS v, count(*) AS n FROM ndb.receipts";
    let before = f.query(Mode::Dummy, sql).await;
    assert_eq!(before.status, Status::Ok, "{}", before.message);
    assert_eq!(column(&before, "v"), ["202309"]);
    // An ingest publishes receipts of a month after the approved period (2021-10..2023-09).
    let table = f.data_dir().join("dummy/store/ndb/receipts");
    let part = std::fs::read_dir(&table)
        .expect("receipts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .expect("a part");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&part).expect("open part"),
    )
    .expect("parquet")
    .build()
    .expect("reader");
    let later = table.join("part-99999.parquet");
    let mut writer = None;
    for batch in reader {
        let batch = batch.expect("batch");
        let schema = batch.schema();
        let at = schema.index_of("claim_ym").expect("claim_ym");
        let mut columns = batch.columns().to_vec();
        columns[at] = Arc::new(arrow::array::Int32Array::from(vec![
            202310;
            batch.num_rows()
        ]));
        let moved = arrow::array::RecordBatch::try_new(schema.clone(), columns).expect("batch");
        writer
            .get_or_insert_with(|| {
                parquet::arrow::ArrowWriter::try_new(
                    std::fs::File::create(&later).expect("create part"),
                    schema.clone(),
                    None,
                )
                .expect("writer")
            })
            .write(&moved)
            .expect("write");
    }
    writer.expect("rows").close().expect("close");
    let manifest = table.join("manifest.json");
    let mut text = std::fs::read_to_string(&manifest).expect("manifest");
    text.push('\n');
    std::fs::write(&manifest, text).expect("publish");
    let after = f.query(Mode::Dummy, sql).await;
    assert_eq!(after.status, Status::Ok, "{}", after.message);
    assert_eq!(
        column(&after, "v"),
        ["202309"],
        "no month outside the period"
    );
    assert_eq!(column(&after, "n"), column(&before, "n"));
}
