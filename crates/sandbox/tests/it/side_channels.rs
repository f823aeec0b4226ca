//! Side channels, from the attacker's side: what the outcome around the cells tells. Error
//! texts and error oracles, the size of held results, and the keys of rows resting on too few
//! persons; each judged against the stored Parquet.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use niji_sandbox::{Mode, QueryOutcome, Status};

use crate::fixture::{Fixture, PROJECT, column, from_store, project_with, text_rows, with_policy};

/// Whether DataFusion itself, over the stored tables, fails on `sql`: the probe is an oracle
/// in a plain engine.
async fn store_fails(f: &Fixture, sql: &str) -> bool {
    let store = f.data_dir().join("store");
    let ctx = datafusion::prelude::SessionContext::new();
    for (db, table) in [("ndb", "receipts"), ("nanbyo", "surveys")] {
        ctx.register_parquet(
            table,
            store.join(db).join(table).to_string_lossy().as_ref(),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await
        .expect("stored table");
    }
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.is_err(),
        Err(_) => true,
    }
}

/// The project "rare": the example's tables and alice's 難病DB columns.
async fn rare_project(f: &Fixture) {
    project_with(
        f,
        "rare",
        &["alice"],
        &[
            ("nanbyo.surveys", "fiscal_year"),
            ("nanbyo.surveys", "disease_no"),
            ("nanbyo.surveys", "municipality"),
            ("nanbyo.surveys", "severity_stage"),
            ("ndb.receipts", "municipality"),
        ],
    )
    .await;
}

/// Each probe fails in a plain engine on the stored rows; through niji it runs, in both
/// modes, to the answer of a formulation that cannot fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_that_fail_on_some_values_give_null_instead() {
    let f = Fixture::new(None).await;
    rare_project(&f).await;
    // (probe, the same without anything that can fail, the probe over the store)
    let probes = [
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE CAST(municipality AS SMALLINT) > 0",
            "SELECT count(*) AS n FROM ndb.receipts WHERE TRY_CAST(municipality AS SMALLINT) > 0",
            "SELECT count(*) FROM receipts WHERE CAST(municipality AS SMALLINT) > 0",
        ),
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE 100 / (days - 1) > 1",
            "SELECT count(*) AS n FROM ndb.receipts WHERE days > 1 AND days < 101",
            "SELECT count(*) FROM receipts WHERE 100 / (days - 1) > 1",
        ),
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE 1 / (CASE WHEN (SELECT max(days) FROM ndb.receipts) > 1 THEN 0 ELSE 1 END) = 1",
            "SELECT count(*) AS n FROM ndb.receipts WHERE (SELECT max(days) FROM ndb.receipts) <= 1",
            "SELECT count(*) FROM receipts WHERE 1 / (CASE WHEN (SELECT max(days) FROM receipts) > 1 THEN 0 ELSE 1 END) = 1",
        ),
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE sqrt(2 - days) IS NULL",
            "SELECT count(*) AS n FROM ndb.receipts WHERE days > 2",
            "SELECT count(*) FROM receipts WHERE sqrt(2 - days) IS NULL",
        ),
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE split_part(prefecture, 'x', days - 1) IS NULL",
            "SELECT count(*) AS n FROM ndb.receipts WHERE days = 1",
            "SELECT count(*) FROM receipts WHERE split_part(prefecture, 'x', days - 1) IS NULL",
        ),
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE substr(prefecture, 1, 2 - days) IS NULL",
            "SELECT count(*) AS n FROM ndb.receipts WHERE days > 2",
            "SELECT count(*) FROM receipts WHERE substr(prefecture, 1, 2 - days) IS NULL",
        ),
        // (Not `… IS NULL`: the optimizer answers that of a strict function from its arguments.)
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE regexp_like(prefecture, CASE WHEN days > 1 THEN '(' ELSE '.' END)",
            "SELECT count(*) AS n FROM ndb.receipts WHERE days = 1",
            "SELECT count(*) FROM receipts WHERE regexp_like(prefecture, CASE WHEN days > 1 THEN '(' ELSE '.' END)",
        ),
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE prefecture ~ CASE WHEN days > 1 THEN '(' ELSE '.' END",
            "SELECT count(*) AS n FROM ndb.receipts WHERE days = 1",
            "SELECT count(*) FROM receipts WHERE prefecture ~ CASE WHEN days > 1 THEN '(' ELSE '.' END",
        ),
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE make_date(2022, days + 11, 1) IS NULL",
            "SELECT count(*) AS n FROM ndb.receipts WHERE days > 1",
            "SELECT count(*) FROM receipts WHERE make_date(2022, days + 11, 1) IS NULL",
        ),
        (
            "SELECT count(*) AS n FROM ndb.receipts WHERE abs(CAST(days - 129 AS TINYINT)) IS NULL",
            "SELECT count(*) AS n FROM ndb.receipts WHERE days = 1",
            "SELECT count(*) FROM receipts WHERE abs(CAST(days - 129 AS TINYINT)) IS NULL",
        ),
    ];
    for (probe, safe, raw) in probes {
        assert!(store_fails(&f, raw).await, "a plain engine fails on: {raw}");
        for mode in [Mode::Dummy, Mode::Real] {
            let got = f.query_as("alice", "rare", mode, probe).await;
            let want = f.query_as("alice", "rare", mode, safe).await;
            assert!(
                matches!(
                    got.status,
                    Status::Ok | Status::Released | Status::Suppressed | Status::Held
                ),
                "{probe} ({mode:?}): {:?} {}",
                got.status,
                got.message
            );
            assert_eq!(got.status, want.status, "{probe} ({mode:?})");
            assert_eq!(column(&got, "n"), column(&want, "n"), "{probe} ({mode:?})");
        }
    }
    // The pair: adding a condition no longer turns an error into an answer.
    for sql in [
        "SELECT count(*) AS n FROM nanbyo.surveys WHERE CAST(municipality AS SMALLINT) > 0",
        "SELECT count(*) AS n FROM nanbyo.surveys WHERE CAST(municipality AS SMALLINT) > 0 AND disease_no = 53",
    ] {
        let o = f.query_as("alice", "rare", Mode::Real, sql).await;
        assert_ne!(o.status, Status::Error, "{sql}: {}", o.message);
    }
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// What remains able to fail (limits) reads the same whatever failed, is logged without its
/// cause, is kept for custodians by query id, and pauses a researcher who keeps failing. A
/// query held for its shape answers held whether or not it failed on the way.
#[tokio::test(flavor = "current_thread")]
async fn failures_read_the_same_and_their_causes_stay_with_custodians() {
    let f = Fixture::new(Some(
        "memory_per_query_mb = 512\ntimeout_seconds = 60\nconcurrent_per_project = 2\nconcurrent_overall = 4\nqueue_wait_ms = 5000\nmax_result_rows = 5\nreal_failures_per_hour = 3\n",
    ))
    .await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    // More rows than the limit: on dummy data the cause is told; on real data it is not.
    let many = "SELECT prefecture, count(*) AS n FROM ndb.receipts GROUP BY prefecture";
    let dummy = f.query(Mode::Dummy, many).await;
    assert_eq!(dummy.status, Status::Error);
    assert!(
        dummy.message.contains("more than 5 rows"),
        "{}",
        dummy.message
    );
    let real = f.query(Mode::Real, many).await;
    assert_eq!(real.status, Status::Error);
    assert!(
        real.message.contains("could not be completed on real data") && !has_digit(&real.message),
        "{}",
        real.message
    );
    assert!(real.row_count.is_none() && real.to_json().get("row_count").is_none());
    // Another query's failure reads the same.
    let other = f
        .query(
            Mode::Real,
            "SELECT claim_ym, count(*) AS n FROM ndb.receipts GROUP BY claim_ym",
        )
        .await;
    assert_eq!((other.status, &other.message), (real.status, &real.message));

    // The custodian finds the cause by the query id; the log has only its kind.
    let entries = f
        .visiting
        .platform()
        .audit()
        .of_query(&real.query_id)
        .await
        .expect("audit");
    let failure = entries
        .iter()
        .find(|e| e.action == "query.failed")
        .expect("the cause is kept");
    assert!(
        failure.detail.contains("more than 5 rows"),
        "{}",
        failure.detail
    );
    let text = logs.text();
    assert!(text.contains("query failed on real data"), "{text}");
    assert_eq!(
        text.matches("more than 5 rows").count(),
        1,
        "only the dummy failure's text is logged: {text}"
    );

    // Held for its shape: the same answer whether the rows fit the limit or not.
    // (A column whose type coercion changes: the types shown must not tell which ran.)
    let rows = "SELECT pid, CASE WHEN days > 1 THEN CAST(days AS INT) ELSE CAST(days AS BIGINT) END AS v FROM ndb.receipts";
    let fits = f.query(Mode::Real, &format!("{rows} LIMIT 2")).await;
    let fails = f.query(Mode::Real, rows).await;
    for o in [&fits, &fails] {
        assert_eq!(o.status, Status::Held, "{}", o.message);
        assert!(o.to_json().get("row_count").is_none());
    }
    assert_eq!(fits.message, fails.message);
    assert_eq!(fits.to_json()["columns"], fails.to_json()["columns"]);
    let behind = f
        .visiting
        .platform()
        .audit()
        .of_query(&fails.query_id)
        .await
        .expect("audit");
    assert!(behind.iter().any(|e| e.action == "query.failed_held"));
    // The author's list of outputs tells neither how many rows nor which one failed.
    let outputs = f
        .visiting
        .platform()
        .list_outputs("alice", None)
        .await
        .expect("outputs");
    let listed: Vec<serde_json::Value> = outputs
        .iter()
        .map(|o| serde_json::to_value(o).expect("json"))
        .collect();
    let of = |id: &str| {
        listed
            .iter()
            .find(|o| o["id"] == id)
            .cloned()
            .expect("listed")
    };
    let (a, b) = (of(&fits.query_id), of(&fails.query_id));
    assert!(a.get("rows").is_none() && b.get("rows").is_none(), "{a}");
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&a), keys(&b));
    assert_eq!(a["findings"], b["findings"]);

    // The third failure the researcher saw pauses their real-data queries and alerts.
    let third = f
        .query(
            Mode::Real,
            "SELECT copay_rate, claim_ym, count(*) AS n FROM ndb.receipts GROUP BY 1, 2",
        )
        .await;
    assert_eq!(third.status, Status::Error);
    let paused = f
        .query(
            Mode::Real,
            "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex",
        )
        .await;
    assert_eq!(paused.status, Status::Refused, "{}", paused.message);
    assert!(paused.message.contains("paused"), "{}", paused.message);
    let alert = f
        .visiting
        .platform()
        .audit()
        .of_query(&third.query_id)
        .await
        .expect("audit");
    assert!(
        alert
            .iter()
            .any(|e| e.action == "alert" && e.detail.contains("real_failures_per_hour")),
        "{alert:?}"
    );
    // bob is not paused, and alice keeps dummy data.
    let bob = f
        .query_as(
            "bob",
            PROJECT,
            Mode::Real,
            "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex",
        )
        .await;
    assert_eq!(bob.status, Status::Released, "{}", bob.message);
    let dummy = f
        .query(
            Mode::Dummy,
            "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex",
        )
        .await;
    assert_eq!(dummy.status, Status::Ok);
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

/// Held and refused outcomes, and workspace tables of real rows, never tell how many rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_results_never_tell_their_size() {
    let f = Fixture::new(None).await;
    let truth = text_rows(
        &from_store(
            &f,
            "SELECT prefecture FROM receipts GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        )
        .await,
    );
    let prefecture = &truth[0][0];
    let sqls = [
        format!(
            "SELECT pid FROM ndb.receipts WHERE prefecture = '{prefecture}' AND copay_rate = 2"
        ),
        format!("SELECT days, points FROM ndb.receipts WHERE prefecture = '{prefecture}'"),
        format!(
            "SELECT pid, count(*) AS n FROM ndb.receipts WHERE prefecture = '{prefecture}' GROUP BY pid"
        ),
    ];
    for sql in &sqls {
        let o = f.query(Mode::Real, sql).await;
        assert_eq!(o.status, Status::Held, "{sql}: {}", o.message);
        let json = o.to_json();
        assert!(json.get("row_count").is_none(), "{json}");
        assert!(!has_digit(&o.message), "{}", o.message);
    }
    let o = f
        .query(
            Mode::Real,
            &format!("CREATE TABLE work.mine AS {}", sqls[0]),
        )
        .await;
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    assert!(!has_digit(&o.message), "{}", o.message);
    // The same on dummy data tells (its rows may be seen).
    let o = f
        .query(
            Mode::Dummy,
            "CREATE TABLE work.mine AS SELECT pid FROM ndb.receipts",
        )
        .await;
    assert!(has_digit(&o.message), "{}", o.message);
}

/// The persons (with an ID5) of each group of the stored receipts by `keys`.
async fn groups_of_receipts(f: &Fixture, keys: &str) -> BTreeMap<Vec<String>, i64> {
    let rows = text_rows(
        &from_store(
            f,
            &format!("SELECT {keys}, count(DISTINCT person_idx) FROM receipts GROUP BY {keys}"),
        )
        .await,
    );
    rows.into_iter()
        .map(|mut row| {
            let n = row.pop().and_then(|n| n.parse().ok()).expect("persons");
            (row, n)
        })
        .collect()
}

/// The rows of an outcome by its first `keys` columns, with the rest of each row.
fn rows_by_keys(o: &QueryOutcome, keys: usize) -> BTreeMap<Vec<String>, Vec<String>> {
    text_rows(&o.batches)
        .into_iter()
        .map(|mut row| {
            let rest = row.split_off(keys);
            (row, rest)
        })
        .collect()
}

/// A group that rests on fewer persons than the rules require does not appear at all; what
/// does appear stays consistent (complementary cells, totals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_groups_on_too_few_persons_are_withheld() {
    let f = Fixture::new(None).await;
    let truth = groups_of_receipts(&f, "prefecture, sex").await;
    assert!(
        truth.values().any(|&n| n < 10) && truth.values().any(|&n| n >= 10),
        "the fixture has small and large groups: {truth:?}"
    );
    for sql in [
        "SELECT prefecture, sex, count(*) AS n FROM ndb.receipts GROUP BY 1, 2",
        "SELECT prefecture, sex, count(DISTINCT pid) AS n FROM ndb.receipts GROUP BY 1, 2",
        "SELECT prefecture, sex, sum(days) AS n FROM ndb.receipts GROUP BY 1, 2",
    ] {
        let o = f.query(Mode::Real, sql).await;
        assert!(
            matches!(o.status, Status::Released | Status::Suppressed),
            "{sql}: {}",
            o.message
        );
        assert!(o.small_groups_withheld && o.to_json()["small_groups_withheld"] == true);
        let shown = rows_by_keys(&o, 2);
        let enough: BTreeSet<&Vec<String>> = truth
            .iter()
            .filter(|(_, n)| **n >= 10)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            shown.keys().collect::<BTreeSet<_>>(),
            enough,
            "{sql}: exactly the groups of at least 10 persons appear"
        );
        // No line (one key fixed) of the rows shown has exactly one masked cell: its total
        // would give it back. Withheld rows are in no line: a partner masked for one would
        // tell that it exists.
        for fixed in 0..2 {
            let mut lines: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            for (key, rest) in &shown {
                let line = lines.entry(key[fixed].as_str()).or_default();
                line.0 += 1;
                if rest[0] == "NULL" {
                    line.1 += 1;
                }
            }
            for (line, (cells, masked)) in lines {
                assert!(
                    masked != 1 || cells == 1,
                    "{sql}: line {line} masks one cell of {cells}"
                );
            }
        }
    }
    // Group keys alone: a small group's existence is what they would show.
    let o = f
        .query(
            Mode::Real,
            "SELECT DISTINCT prefecture, sex FROM ndb.receipts",
        )
        .await;
    for key in rows_by_keys(&o, 2).keys() {
        assert!(truth[key] >= 10, "{key:?} shown: {} persons", truth[key]);
    }
    // Records without an ID5 are nobody countable: their groups never show as 0.
    let unidentified =
        text_rows(&from_store(&f, "SELECT count(*) FROM receipts WHERE person_idx IS NULL").await);
    assert_ne!(
        unidentified[0][0], "0",
        "the fixture has records without ID5"
    );
    let o = f
        .query(
            Mode::Real,
            "SELECT prefecture, count(DISTINCT pid) AS persons, count(*) AS receipts FROM ndb.receipts WHERE pid IS NULL GROUP BY 1",
        )
        .await;
    assert!(
        o.batches.iter().all(|b| b.num_rows() == 0),
        "{:?}",
        text_rows(&o.batches)
    );
    assert!(o.small_groups_withheld);

    // The 難病DB table: no (disease, severity) of fewer than 10 persons appears.
    rare_project(&f).await;
    let persons: BTreeMap<Vec<String>, i64> = text_rows(
        &from_store(
            &f,
            "SELECT disease_no, severity_stage, count(DISTINCT person_idx) FROM surveys GROUP BY 1, 2",
        )
        .await,
    )
    .into_iter()
    .map(|mut row| {
        let n = row.pop().and_then(|n| n.parse().ok()).expect("persons");
        (row, n)
    })
    .collect();
    let o = f
        .query_as(
            "alice",
            "rare",
            Mode::Real,
            "SELECT disease_no, severity_stage, count(*) AS n FROM nanbyo.surveys GROUP BY 1, 2",
        )
        .await;
    assert_ne!(o.status, Status::Error, "{}", o.message);
    assert!(o.small_groups_withheld);
    for key in rows_by_keys(&o, 2).keys() {
        assert!(persons[key] >= 10, "{key:?}: {} persons", persons[key]);
    }
}

/// Rounded counts: the totals shown are those of the rows shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_count_only_the_rows_shown() {
    let f = with_policy("rounding = 0", "rounding = 5").await;
    let o = f
        .query(
            Mode::Real,
            "SELECT prefecture, count(*) AS n FROM ndb.receipts GROUP BY 1",
        )
        .await;
    assert!(o.small_groups_withheld, "{}", o.message);
    let shown: i64 = column(&o, "n")
        .iter()
        .filter_map(|n| n.parse::<i64>().ok())
        .sum();
    assert_eq!(o.totals, vec![("n".to_string(), shown)]);
}

const BY_PREFECTURE: &str =
    "SELECT prefecture, count(*) AS n FROM ndb.receipts WHERE prefecture {} GROUP BY prefecture";
const PERSONS: &str = "SELECT count(DISTINCT pid) AS n FROM ndb.receipts WHERE prefecture {}";

/// alice's real-data query in the example project: `template` with `{}` replaced by `condition`.
async fn real_where(f: &Fixture, template: &str, condition: &str) -> QueryOutcome {
    f.query(Mode::Real, &template.replace("{}", condition))
        .await
}

/// Whether a result left out a small group is not told: a query about one small group and one
/// about no group at all answer alike, in status, flag and message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_tells_whether_a_small_group_was_withheld() {
    let f = Fixture::new(None).await;
    let truth = groups_of_receipts(&f, "prefecture").await;
    let (small, persons) = truth
        .iter()
        .find(|(_, n)| (1..10).contains(*n))
        .expect("a prefecture of 1-9 persons");
    let some = real_where(&f, BY_PREFECTURE, &format!("= '{}'", small[0])).await;
    let nobody = real_where(&f, BY_PREFECTURE, "= '99'").await;
    assert!(
        truth.keys().all(|k| k[0] != "99"),
        "no prefecture 99 in the store"
    );
    for o in [&some, &nobody] {
        assert!(
            o.batches.iter().all(|b| b.num_rows() == 0),
            "{persons} persons shown"
        );
    }
    let seen = |o: &QueryOutcome| {
        (
            o.status,
            o.small_groups_withheld,
            o.message.clone(),
            o.suppressed.clone(),
            text_rows(&o.batches),
        )
    };
    assert_eq!(seen(&some), seen(&nobody));
    // Beside a large group: no partner is masked for the small one.
    let (large, _) = truth
        .iter()
        .find(|(_, n)| **n >= 30)
        .expect("a prefecture of 30+ persons");
    let some = real_where(
        &f,
        BY_PREFECTURE,
        &format!("IN ('{}', '{}')", small[0], large[0]),
    )
    .await;
    let nobody = real_where(&f, BY_PREFECTURE, &format!("IN ('99', '{}')", large[0])).await;
    assert_eq!(seen(&some), seen(&nobody));
    assert_eq!(column(&some, "prefecture"), [large[0].clone()]);
    assert_ne!(column(&some, "n"), ["NULL"]);
    // Without group keys: a count of nobody is masked as a count of a few is.
    let some = real_where(&f, PERSONS, &format!("= '{}'", small[0])).await;
    let nobody = real_where(&f, PERSONS, "= '99'").await;
    assert_eq!(column(&some, "n"), ["NULL"]);
    assert_eq!(seen(&some).4, seen(&nobody).4);
    assert_eq!(some.status, nobody.status);
}
