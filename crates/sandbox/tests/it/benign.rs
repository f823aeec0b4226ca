//! The benign suite: ordinary analyses of the example study pass disclosure control without
//! needless suppression, and what is released is the truth of the store. Every masked cell
//! must say a rule that protects somebody.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use niji_sandbox::{Mode, QueryOutcome, Status};

use crate::fixture::{Fixture, Overrides, column, from_store, project_with, text_rows};

/// Persons in the benign suite's store: enough that most cells of an ordinary table are not
/// small, few enough for a test.
const PERSONS: u64 = 30_000;
const STUDY: &str = "benign-study";

async fn real(f: &Fixture, sql: &str) -> QueryOutcome {
    let o = f.query_as("alice", STUDY, Mode::Real, sql).await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{sql}: {:?} {}",
        o.status,
        o.message
    );
    o
}

type Row = (Vec<String>, Vec<String>);

/// Each row of `batches` as its columns' text, split into the first `keys` columns and the
/// rest, in order.
fn rows(batches: &[RecordBatch], keys: usize) -> Vec<Row> {
    text_rows(batches)
        .into_iter()
        .map(|mut row| {
            let rest = row.split_off(keys);
            (row, rest)
        })
        .collect()
}

fn rows_by_key(batches: &[RecordBatch], keys: usize) -> BTreeMap<Vec<String>, Vec<String>> {
    rows(batches, keys).into_iter().collect()
}

/// Exactly the groups of 10 or more persons are rows (the others are withheld whole); released
/// cells equal the store's truth; masked cells say why, and a masked cell (of 10 or more persons,
/// as every row's) is masked only to protect another (complementary) or against differencing.
/// Returns (cells, masked cells).
fn compare(
    o: &QueryOutcome,
    truth: &BTreeMap<Vec<String>, Vec<String>>,
    keys: usize,
    persons_at: usize,
) -> (usize, usize) {
    let persons_of = |values: &Vec<String>| -> i64 { values[persons_at].parse().expect("persons") };
    let released = rows(&o.batches, keys);
    let large = truth.values().filter(|v| persons_of(v) >= 10).count();
    assert_eq!(
        released.len(),
        large,
        "every group of 10 or more persons is a row, and no other"
    );
    assert!(o.small_groups_withheld);
    let mut needless = 0;
    for (row, (key, values)) in released.iter().enumerate() {
        let true_values = &truth[key];
        let persons = persons_of(true_values);
        assert!(persons >= 10, "{key:?}: a row of {persons} persons");
        let masked: Vec<_> = o.suppressed.iter().filter(|c| c.row == row).collect();
        for c in &masked {
            let at = o
                .schema
                .as_ref()
                .and_then(|s| s.index_of(&c.column).ok())
                .expect("masked column");
            assert_eq!(values[at - keys], "NULL", "{key:?} {} is masked", c.column);
        }
        let reasons: Vec<&str> = masked.iter().map(|c| c.reason.as_str()).collect();
        if reasons.is_empty() {
            for (v, t) in values.iter().zip(true_values) {
                let (v, t): (f64, f64) = (v.parse().expect("num"), t.parse().expect("num"));
                assert!(
                    (v - t).abs() <= 1e-9 * t.abs().max(1.0),
                    "{key:?}: {v} vs {t}"
                );
            }
        } else {
            assert!(
                reasons
                    .iter()
                    .all(|r| r.starts_with("complementary") || r.contains("differs from")),
                "{key:?}: {persons} persons masked for {reasons:?}"
            );
            needless += 1;
        }
    }
    (released.len(), needless)
}

const BY_AGE_BAND: &str = "SELECT prefecture, CAST(floor((claim_ym / 100 - date_part('year', birth_date)) / 5) * 5 AS BIGINT) AS age_band, sex, count(DISTINCT pid) AS persons FROM ndb.receipts WHERE claim_ym BETWEEN 202204 AND 202303 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
const MONTHLY_DAYS: &str = "SELECT claim_ym, copay_rate, sum(days) AS days, count(DISTINCT pid) AS persons FROM ndb.receipts WHERE setting = 2 GROUP BY 1, 2 ORDER BY 1, 2";
/// Difference in differences: 後期高齢者 一般Ⅱ (2割 from 2022-10) against 一般Ⅰ (1割), outpatient
/// visit days of their 後期高齢者 receipts before (2021-10..2022-08) and after (2022-10..), the
/// month of anticipation left out.
const DID: &str = "WITH groups AS (SELECT pid, max(CASE WHEN income_class = '一般Ⅱ' THEN 1 ELSE 0 END) AS treated FROM ndb.receipts WHERE income_class IN ('一般Ⅰ', '一般Ⅱ') GROUP BY pid) \
    SELECT g.treated, r.claim_ym >= 202210 AS after, sum(r.days) AS days, count(DISTINCT r.pid) AS persons \
    FROM ndb.receipts r JOIN groups g ON r.pid = g.pid \
    WHERE r.setting = 2 AND r.claim_ym <> 202209 AND r.income_class IN ('一般', '一般Ⅰ', '一般Ⅱ') \
    GROUP BY 1, 2 ORDER BY 1, 2";

/// The same analyses over the stored receipts, bypassing niji (person_idx for pid).
fn on_store(sql: &str) -> String {
    sql.replace("ndb.receipts", "receipts")
        .replace("pid", "person_idx")
}

/// days(treated, after) / days(treated, before) ÷ the same of the control, less one.
fn did(batches: &[RecordBatch]) -> f64 {
    let rows = rows_by_key(batches, 2);
    let days = |t: &str, a: &str| -> f64 {
        rows[&vec![t.to_string(), a.to_string()]][0]
            .parse()
            .expect("days")
    };
    (days("1", "true") / days("1", "false")) / (days("0", "true") / days("0", "false")) - 1.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_tables_and_the_did_pass_without_needless_suppression() {
    let f = Fixture::with(PERSONS, Overrides::default()).await;
    // The example project, its receipts with the date of birth as well (for age bands).
    project_with(&f, STUDY, &["alice"], &[("ndb.receipts", "birth_date")]).await;

    // Persons by prefecture × 5-year age band × sex, one fiscal year.
    let o = real(&f, BY_AGE_BAND).await;
    let truth = rows_by_key(&from_store(&f, &on_store(BY_AGE_BAND)).await, 3);
    let (cells, needless) = compare(&o, &truth, 3, 0);
    let small = truth
        .values()
        .filter(|v| v[0].parse::<i64>().expect("n") < 10)
        .count();
    println!(
        "prefecture × age band × sex: {cells} rows, {small} of fewer than 10 persons, {} cells masked, {needless} rows of 10+ persons (complementary or differencing)",
        o.suppressed.len()
    );
    // Complementary suppression takes one partner per masked cell at most in each line it
    // stands in (three keys): more would be needless.
    assert!(
        needless <= 3 * small,
        "{needless} cells of 10+ persons masked for {small} small"
    );

    // Monthly outpatient visit days by 負担割合: nothing masked.
    let o = real(&f, MONTHLY_DAYS).await;
    let truth = rows_by_key(&from_store(&f, &on_store(MONTHLY_DAYS)).await, 2);
    let (cells, needless) = compare(&o, &truth, 2, 1);
    let small = truth
        .values()
        .filter(|v| v[1].parse::<i64>().expect("n") < 10)
        .count();
    println!(
        "monthly days by copay rate: {cells} rows, {small} of fewer than 10 persons, {} cells masked, {needless} rows of 10+ persons (complementary)",
        o.suppressed.len()
    );
    // Only the small 公費単独 (rate 0) cells, and one partner each, which a month's total
    // would give back.
    for (key, _) in rows(&o.batches, 2) {
        let persons: i64 = truth[&key][1].parse().expect("persons");
        assert!(persons >= 10 || key[1] == "0", "{key:?}: {persons} persons");
    }
    assert!(
        needless <= small,
        "{needless} rows of 10+ persons masked for {small} small"
    );
    // Without 公費単独 every cell is large, and nothing is masked.
    let o = real(
        &f,
        &MONTHLY_DAYS.replace("setting = 2", "setting = 2 AND copay_rate > 0"),
    )
    .await;
    assert_eq!(o.status, Status::Released, "{:?}", o.suppressed);
    assert_eq!(o.row_count, Some(72), "24 months × 3 rates");

    // The 2割負担 difference in differences comes out of the released cells as it comes out
    // of the store, and close to the injected effect.
    let o = real(&f, DID).await;
    assert_eq!(o.status, Status::Released, "{:?}", o.suppressed);
    let truth = from_store(&f, &on_store(DID)).await;
    let (niji, store) = (did(&o.batches), did(&truth));
    let injected = niji_synth::SynthConfig::new(0, 0, std::path::PathBuf::new()).copay_effect;
    println!("DiD: released {niji:+.4}, store {store:+.4}, injected {injected:+.4}");
    assert!(
        (niji - store).abs() < 1e-12,
        "released {niji} vs store {store}"
    );
    assert!(
        (niji - injected).abs() < 0.015,
        "DiD {niji:+.4} is not close to the injected {injected:+.4}"
    );
    let persons: Vec<f64> = column(&o, "persons")
        .iter()
        .map(|p| p.parse().expect("persons"))
        .collect();
    assert!(persons.iter().all(|&p| p >= 100.0), "{persons:?}");
}

/// The shadow is planned again from the SQL over the shadow views (see `Visiting::shadow_of`):
/// on queries of every shape a researcher writes, it matches the checked plan column for
/// column (a mismatch would hold the result with this reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_matches_the_checked_plan_column_for_column() {
    let f = Fixture::with(PERSONS, Overrides::default()).await;
    project_with(&f, STUDY, &["alice"], &[("ndb.receipts", "birth_date")]).await;
    for sql in [
        BY_AGE_BAND,
        MONTHLY_DAYS,
        DID,
        "SELECT sex AS s, count(*) AS n, avg(points) AS mean_points FROM ndb.receipts GROUP BY sex",
        "SELECT r.prefecture, d.is_main, count(DISTINCT r.pid) AS persons FROM ndb.receipts r JOIN ndb.diagnoses d ON r.record_key = d.receipt_key GROUP BY r.prefecture, d.is_main",
        "WITH y AS (SELECT pid, claim_ym / 100 AS year, sum(points) AS points FROM ndb.receipts GROUP BY pid, claim_ym / 100) SELECT year, count(*) AS persons, sum(points) AS points FROM y GROUP BY year",
        "SELECT setting, count(*) AS n FROM ndb.receipts GROUP BY setting HAVING count(*) > 100",
        "SELECT sex, CASE WHEN days > 10 THEN 'long' ELSE 'short' END AS stay, count(DISTINCT pid) AS persons FROM ndb.receipts GROUP BY 1, 2",
        "SELECT sex, count(*) FILTER (WHERE setting = 1) AS inpatient, count(*) AS all_receipts FROM ndb.receipts GROUP BY sex",
        "SELECT pid, days FROM ndb.receipts",
    ] {
        let o = f.query_as("alice", STUDY, Mode::Real, sql).await;
        assert!(
            !o.message.contains("does not match"),
            "{sql}: {}",
            o.message
        );
        assert!(
            matches!(
                o.status,
                Status::Released | Status::Suppressed | Status::Held
            ),
            "{sql}: {:?} {}",
            o.status,
            o.message
        );
    }
}
