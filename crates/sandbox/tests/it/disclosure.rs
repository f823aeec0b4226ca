//! Disclosure control from the attacker's side: each test tries to get persons out of real
//! data and checks, against the store itself, that what leaves rests on enough persons.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use niji_sandbox::{Mode, QueryOutcome, Status};

use crate::fixture::{
    Fixture, OTHER, column, from_store, narrow_project, per_prefecture, project_with, text_rows,
    with_policy,
};

/// Row index → reasons of its masked cells.
pub(crate) fn reasons(o: &QueryOutcome) -> BTreeMap<usize, Vec<String>> {
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for c in &o.suppressed {
        out.entry(c.row).or_default().push(c.reason.clone());
    }
    out
}

pub(crate) async fn real(f: &Fixture, sql: &str) -> QueryOutcome {
    f.query(Mode::Real, sql).await
}

/// A prefecture of 1–9 persons in the fixture's store.
pub(crate) async fn small_prefecture(f: &Fixture) -> String {
    per_prefecture(f)
        .await
        .into_iter()
        .find(|(_, (p, _))| *p >= 1 && *p < 10)
        .map(|(code, _)| code)
        .expect("a small prefecture")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_cells_never_leave_whatever_the_sql_counts() {
    let f = Fixture::new(None).await;
    let truth = per_prefecture(&f).await;
    let small: Vec<&String> = truth
        .iter()
        .filter(|(_, (p, _))| *p < 10)
        .map(|(k, _)| k)
        .collect();
    assert!(
        !small.is_empty(),
        "the fixture has small prefectures: {truth:?}"
    );
    // Receipts counted to look big: the cell of a prefecture with few persons still goes.
    let big_receipts_few_persons = truth.iter().any(|(_, (p, r))| *p < 10 && *r >= 10);
    let o = real(&f, "SELECT prefecture, count(*) AS receipts, min(points) AS lo, max(points) AS hi, median(points) AS mid, avg(points) AS mean FROM ndb.receipts GROUP BY prefecture").await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{}",
        o.message
    );
    let masked = reasons(&o);
    let prefs = column(&o, "prefecture");
    let receipts = column(&o, "receipts");
    for (row, pref) in prefs.iter().enumerate() {
        let (persons, n) = truth[pref];
        // A prefecture of few persons does not appear at all, however many receipts it has.
        assert!(persons >= 10, "{pref}: a row of {persons} persons appears");
        if !masked.contains_key(&row) {
            assert_eq!(
                receipts[row],
                n.to_string(),
                "released cells are the true counts"
            );
        }
    }
    assert_eq!(
        prefs.len(),
        truth.values().filter(|(p, _)| *p >= 10).count(),
        "every prefecture of at least 10 persons is a row"
    );
    assert!(o.small_groups_withheld, "{}", o.message);
    assert!(
        big_receipts_few_persons,
        "the fixture has a prefecture of few persons and many receipts: {truth:?}"
    );
    // ORDER BY … LIMIT 1 picks the smallest group: it is withheld.
    let o = real(&f, "SELECT prefecture, count(*) AS n FROM ndb.receipts GROUP BY prefecture ORDER BY count(DISTINCT pid), prefecture LIMIT 1").await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{}",
        o.message
    );
    assert!(
        column(&o, "n").is_empty() && o.small_groups_withheld,
        "{}",
        o.message
    );
    // A count of a CASE or a sum of zeros elsewhere rests on the persons it counts.
    let target = small[0];
    for sql in [
        format!(
            "SELECT count(CASE WHEN prefecture = '{target}' THEN 1 END) AS n FROM ndb.receipts"
        ),
        format!(
            "SELECT sum(CASE WHEN prefecture = '{target}' THEN 1 ELSE 0 END) AS n FROM ndb.receipts"
        ),
        format!("SELECT count(*) FILTER (WHERE prefecture = '{target}') AS n FROM ndb.receipts"),
        format!("SELECT avg(points) AS n FROM ndb.receipts WHERE prefecture = '{target}'"),
        // A column merely named pid is not the pseudonym: its nulls are not unknown persons.
        format!(
            "SELECT count(x.pid) AS n FROM (SELECT CASE WHEN prefecture = '{target}' THEN pid END AS pid FROM ndb.receipts) x"
        ),
    ] {
        let o = real(&f, &sql).await;
        assert_eq!(o.status, Status::Suppressed, "{sql}: {}", o.message);
        assert_eq!(column(&o, "n"), ["NULL"], "{sql}");
    }
    // The mean of two persons.
    let o = real(&f, "SELECT avg(points) AS n FROM ndb.receipts WHERE pid IN (SELECT pid FROM ndb.receipts GROUP BY pid ORDER BY pid LIMIT 2)").await;
    assert_eq!(column(&o, "n"), ["NULL"], "{}", o.message);
    // Every attempt is in the audit log with its outcome.
    let log = f
        .visiting
        .platform()
        .audit()
        .recent(50)
        .await
        .expect("audit");
    assert!(
        log.iter()
            .filter(|e| e.detail.contains("\"outcome\":\"suppressed\"")
                || e.detail.contains("\"outcome\":\"released\""))
            .count()
            >= 7
    );
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
async fn rows_pseudonyms_and_record_keys_stay_inside() {
    let f = Fixture::new(None).await;
    for (sql, why) in [
        ("SELECT * FROM ndb.receipts LIMIT 5", "row-level"),
        (
            "SELECT claim_ym, days FROM ndb.receipts ORDER BY points DESC LIMIT 1",
            "row-level",
        ),
        (
            "SELECT pid, count(*) AS n FROM ndb.receipts GROUP BY pid",
            "pseudonyms",
        ),
        ("SELECT max(pid) AS p FROM ndb.receipts", "pseudonyms"),
        (
            "SELECT record_key, count(*) AS n FROM ndb.receipts GROUP BY record_key",
            "record keys",
        ),
        (
            "SELECT r.sex, x.n FROM ndb.receipts r JOIN (SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex) x ON x.sex = r.sex",
            "row",
        ),
        (
            "SELECT sex FROM ndb.receipts UNION SELECT sex FROM ndb.receipts",
            "DISTINCT",
        ),
        (
            "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex UNION ALL SELECT setting, count(*) FROM ndb.receipts GROUP BY setting",
            "UNION",
        ),
        // A subquery's value in an output column would leave unchecked: one person's points
        // added to a large count.
        (
            "SELECT count(*) + (SELECT max(points) FROM ndb.receipts WHERE pid = (SELECT min(pid) FROM ndb.receipts)) AS n FROM ndb.receipts",
            "subquery",
        ),
    ] {
        let o = real(&f, sql).await;
        assert_eq!(o.status, Status::Held, "{sql}: {}", o.message);
        assert!(o.message.contains(why), "{sql}: {}", o.message);
        assert!(o.batches.is_empty(), "{sql}");
    }
    // Aggregates that list values are not even allowed.
    let o = real(&f, "SELECT array_agg(days) AS d FROM ndb.receipts").await;
    assert_eq!(o.status, Status::Refused, "{}", o.message);
    // The same via a workspace table: its lineage is not tracked, so nothing leaves.
    let o = real(
        &f,
        "CREATE TABLE work.per_person AS SELECT pid, count(*) AS n FROM ndb.receipts GROUP BY pid",
    )
    .await;
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    let o = real(
        &f,
        "SELECT n, count(*) AS persons FROM work.per_person GROUP BY n",
    )
    .await;
    assert_eq!(o.status, Status::Held, "{}", o.message);
    // Details rest on the persons of their records: diagnoses alone are counted by person too,
    // and rare codes do not appear.
    let o = real(
        &f,
        "SELECT icd10, count(*) AS n FROM ndb.diagnoses GROUP BY icd10",
    )
    .await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{}",
        o.message
    );
    let persons: BTreeMap<String, i64> = text_rows(
        &from_store(
            &f,
            "SELECT icd10, count(DISTINCT parent_person_idx) FROM diagnoses GROUP BY icd10",
        )
        .await,
    )
    .into_iter()
    .map(|row| (row[0].clone(), row[1].parse().expect("persons")))
    .collect();
    assert!(
        persons.values().any(|&n| n < 10),
        "the fixture has rare codes"
    );
    for code in column(&o, "icd10") {
        assert!(persons[&code] >= 10, "{code}: {} persons", persons[&code]);
    }
    // Details joined to their records rest on the records' persons.
    let o = real(&f, "SELECT substr(d.icd10, 1, 1) AS chapter, count(DISTINCT r.pid) AS persons FROM ndb.diagnoses d JOIN ndb.receipts r ON d.receipt_key = r.record_key GROUP BY substr(d.icd10, 1, 1)").await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{}",
        o.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differencing_and_lone_suppressed_cells_are_caught() {
    let f = Fixture::new(None).await;
    let small = &small_prefecture(&f).await;
    let o = real(
        &f,
        "SELECT count(*) AS n, count(DISTINCT pid) AS persons FROM ndb.receipts",
    )
    .await;
    assert_eq!(o.status, Status::Released, "{}", o.message);
    // The same again is no news.
    let again = real(
        &f,
        "SELECT count(*) AS n, count(DISTINCT pid) AS persons FROM ndb.receipts",
    )
    .await;
    assert_eq!(again.status, Status::Released, "{}", again.message);
    // All minus one: the person left out would be the difference.
    let o = real(
        &f,
        "SELECT count(*) AS n FROM ndb.receipts WHERE pid <> (SELECT min(pid) FROM ndb.receipts)",
    )
    .await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    assert!(
        o.suppressed[0]
            .reason
            .contains("differs from an earlier released cell"),
        "{:?}",
        o.suppressed
    );
    // A released table's total counts too: in a project that released nothing else, a table
    // by sex, then everyone but a few.
    let by_sex = "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex";
    let o = f.query_as("carol", OTHER, Mode::Real, by_sex).await;
    assert_eq!(o.status, Status::Released, "{}", o.message);
    let all_but_few =
        format!("SELECT count(*) AS n FROM ndb.receipts WHERE prefecture <> '{small}'");
    let o = f.query_as("carol", OTHER, Mode::Real, &all_but_few).await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    assert!(
        o.suppressed[0].reason.contains("differs from"),
        "{:?}",
        o.suppressed
    );
    // Released person sets are kept inside the platform, for later checks: the two cells by
    // sex and their total.
    let kept = f
        .visiting
        .platform()
        .db()
        .released_sets_since(OTHER, 0)
        .await
        .expect("sets");
    assert!(kept.len() >= 3, "{}", kept.len());
    // A withheld row has no partner masked for it (that would tell that its group exists);
    // the total released before would give it back, and differencing masks the rest.
    let o = real(&f, &format!("SELECT prefecture = '{small}' AS is_small, count(*) AS n FROM ndb.receipts GROUP BY prefecture = '{small}'")).await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    assert_eq!(column(&o, "is_small"), ["false"]);
    assert_eq!(column(&o, "n"), ["NULL"]);
    assert!(
        o.suppressed
            .iter()
            .all(|c| c.reason.contains("differs from")),
        "{:?}",
        o.suppressed
    );
}

/// The masked cells of `o`, as (column, reason).
fn masked_cells(o: &QueryOutcome) -> Vec<(&str, &str)> {
    o.suppressed
        .iter()
        .map(|c| (c.column.as_str(), c.reason.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differencing_sees_the_persons_of_each_aggregate() {
    let f = Fixture::new(None).await;
    let small = &small_prefecture(&f).await;
    let everyone = real(
        &f,
        "SELECT count(DISTINCT pid) AS persons FROM ndb.receipts",
    )
    .await;
    assert_eq!(everyone.status, Status::Released, "{}", everyone.message);
    let differs = "differs from an earlier released cell";
    // Everyone but a small prefecture, left out by the aggregate rather than the group: a
    // FILTER, a count of a CASE, a sum of a CASE with ELSE 0.
    for most in [
        format!("count(DISTINCT pid) FILTER (WHERE prefecture <> '{small}')"),
        format!("count(CASE WHEN prefecture <> '{small}' THEN 1 END)"),
        format!("sum(CASE WHEN prefecture <> '{small}' THEN 1 ELSE 0 END)"),
    ] {
        let o = real(
            &f,
            &format!("SELECT count(DISTINCT pid) AS everyone, {most} AS most FROM ndb.receipts"),
        )
        .await;
        assert_eq!(o.status, Status::Suppressed, "{most}: {}", o.message);
        let masked = masked_cells(&o);
        assert_eq!(masked.len(), 1, "{most}: only its cell goes: {masked:?}");
        assert_eq!(masked[0].0, "most");
        assert!(masked[0].1.contains(differs), "{masked:?}");
        assert_eq!(column(&o, "most"), ["NULL"]);
        assert_eq!(column(&o, "everyone"), column(&everyone, "persons"));
    }
    // Two sums side by side in a project that released nothing: their difference would be the
    // small prefecture's points.
    let o = f
        .query_as("carol", OTHER, Mode::Real, &format!("SELECT sum(points) AS all_points, sum(CASE WHEN prefecture <> '{small}' THEN points ELSE 0 END) AS most_points FROM ndb.receipts"))
        .await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    let masked = masked_cells(&o);
    assert_eq!(masked.len(), 1, "{masked:?}");
    assert_eq!(masked[0].0, "most_points");
    // An aggregate's own persons are kept when released: the men's points, then the men's
    // points but one man's.
    let men =
        "SELECT sum(CASE WHEN sex = 1 THEN points ELSE 0 END) AS men_points FROM ndb.receipts";
    let o = f.query_as("carol", OTHER, Mode::Real, men).await;
    assert_eq!(o.status, Status::Released, "{}", o.message);
    let all_men_but_one = "SELECT sum(points) AS p FROM ndb.receipts WHERE sex = 1 AND pid <> (SELECT min(pid) FROM ndb.receipts WHERE sex = 1)";
    let o = f
        .query_as("carol", OTHER, Mode::Real, all_men_but_one)
        .await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    assert!(
        masked_cells(&o)
            .iter()
            .all(|(_, why)| why.contains(differs)),
        "{:?}",
        o.suppressed
    );
    // The largest points of a small prefecture, the others' rows made 0 by a CASE: the cell
    // rests on the prefecture's few persons, not on everyone.
    let o = real(&f, &format!("SELECT max(CASE WHEN prefecture = '{small}' THEN points ELSE 0 END) AS top FROM ndb.receipts")).await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    assert_eq!(column(&o, "top"), ["NULL"]);
    assert!(
        o.suppressed[0].reason.contains("fewer than 10 persons"),
        "{:?}",
        o.suppressed
    );
    // A table whose rows each pass, but whose total (summing its column) is everyone but a
    // small prefecture, after everyone was released.
    let o = real(&f, &format!("SELECT sex, count(DISTINCT pid) AS persons FROM ndb.receipts WHERE prefecture <> '{small}' GROUP BY sex ORDER BY sex")).await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    assert!(
        column(&o, "persons").iter().all(|p| p == "NULL"),
        "the smallest row goes, and its partner as its complement: {:?}",
        o.suppressed
    );
    assert!(
        masked_cells(&o)
            .iter()
            .any(|(_, why)| why.contains("the table's total would differ")),
        "{:?}",
        o.suppressed
    );
    // A table of group keys alone, covering everyone but the small prefecture, has no column
    // whose total could be summed: it shows its keys. (Masking cannot shrink its total, so a
    // total check on it would loop for ever: the checks run on the query's own task.)
    let keys_only = format!(
        "SELECT sex FROM ndb.receipts WHERE prefecture <> '{small}' GROUP BY sex ORDER BY sex"
    );
    let o = real(&f, &keys_only).await;
    assert_eq!(o.status, Status::Released, "{}", o.message);
    assert_eq!(column(&o, "sex").len(), 2);
    // Rows chosen by an aggregate the result does not show: the sexes found among a small
    // prefecture's persons, or the sexes not found there. Masking the cells would still show
    // the keys; the result is held.
    for having in [
        format!("count(*) FILTER (WHERE prefecture = '{small}') > 0"),
        format!("count(*) FILTER (WHERE prefecture <> '{small}') = count(*)"),
    ] {
        let o = real(
            &f,
            &format!("SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex HAVING {having}"),
        )
        .await;
        assert_eq!(o.status, Status::Held, "{having}: {}", o.message);
        assert!(
            o.message.contains("an aggregate it does not show"),
            "{}",
            o.message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_benign_table_is_released_whole_and_true() {
    let f = Fixture::new(None).await;
    let o = real(&f, "SELECT sex, count(DISTINCT pid) AS persons, sum(days) AS days FROM ndb.receipts GROUP BY sex ORDER BY sex").await;
    assert_eq!(
        o.status,
        Status::Released,
        "{}: {:?}",
        o.message,
        o.suppressed
    );
    assert!(o.suppressed.is_empty());
    let dummy = f.query(Mode::Dummy, "SELECT 1 AS one").await;
    assert_eq!(dummy.status, Status::Ok);
    let persons: u64 = column(&o, "persons")
        .iter()
        .map(|v| v.parse::<u64>().expect("n"))
        .sum();
    let b = from_store(&f, "SELECT count(DISTINCT person_idx) FROM receipts").await;
    let all = b[0].column(0).as_primitive::<Int64Type>().value(0) as u64;
    assert_eq!(persons, all, "released counts are the true ones");
    let json = o.to_json();
    assert_eq!(json["status"], "released");
    assert_eq!(json["suppressed"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounded_counts_come_with_totals_of_the_rounded_cells() {
    let f = with_policy("rounding = 0", "rounding = 5").await;
    let o = real(&f, "SELECT sex, count(DISTINCT pid) AS persons, count(*) AS receipts, avg(days) AS days FROM ndb.receipts GROUP BY sex ORDER BY sex").await;
    assert_eq!(o.status, Status::Released, "{}", o.message);
    let truth = from_store(
        &f,
        "SELECT sex, count(DISTINCT person_idx), count(*) FROM receipts GROUP BY sex ORDER BY sex",
    )
    .await;
    let true_persons: Vec<i64> = truth
        .iter()
        .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    for (name, at) in [("persons", 0), ("receipts", 1)] {
        let released: Vec<i64> = column(&o, name)
            .iter()
            .map(|v| v.parse().expect("count"))
            .collect();
        assert!(released.iter().all(|v| v % 5 == 0), "{name}: {released:?}");
        // The total is the sum of the rounded cells, never the exact total.
        let total = o.totals.iter().find(|(c, _)| c == name).expect("total").1;
        assert_eq!(total, released.iter().sum::<i64>(), "{name}");
        if at == 0 {
            for (r, t) in released.iter().zip(&true_persons) {
                assert!((r - t).abs() <= 2, "{r} is {t} rounded to 5");
            }
        }
    }
    assert!(
        o.totals.iter().all(|(c, _)| c != "days"),
        "means are not counts: {:?}",
        o.totals
    );
    assert!(o.to_json()["totals"]["persons"].is_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rare_diseases_and_small_municipalities_never_leave() {
    let f = Fixture::new(None).await;
    project_with(
        &f,
        "muni-study",
        &["alice"],
        &[
            ("nanbyo.surveys", "fiscal_year"),
            ("nanbyo.surveys", "disease_no"),
            ("nanbyo.surveys", "municipality"),
            ("ndb.receipts", "municipality"),
        ],
    )
    .await;
    let real = |sql: &'static str| f.query_as("alice", "muni-study", Mode::Real, sql);
    // Rare diseases by municipality: every cell is a handful of persons.
    let o = real("SELECT municipality, disease_no, count(DISTINCT pid) AS persons FROM nanbyo.surveys GROUP BY 1, 2").await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{}",
        o.message
    );
    let persons = column(&o, "persons");
    assert!(persons.iter().all(|p| p == "NULL"), "{persons:?}");
    assert!(o.small_groups_withheld, "{}", o.message);

    // Receipts by municipality: what is shown respects the population rules of the store's
    // own reference table.
    let populations: BTreeMap<String, i64> =
        text_rows(&from_store(&f, "SELECT municipality, population FROM municipalities").await)
            .into_iter()
            .map(|row| (row[0].clone(), row[1].parse().expect("population")))
            .collect();
    let truth: BTreeMap<String, i64> = text_rows(
        &from_store(
            &f,
            "SELECT municipality, count(DISTINCT person_idx) FROM receipts GROUP BY 1",
        )
        .await,
    )
    .into_iter()
    .map(|row| (row[0].clone(), row[1].parse().expect("persons")))
    .collect();
    let o =
        real("SELECT municipality, count(DISTINCT pid) AS persons FROM ndb.receipts GROUP BY 1")
            .await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{}",
        o.message
    );
    for (code, shown) in column(&o, "municipality").iter().zip(column(&o, "persons")) {
        // A cell of 0 (receipts of nobody identified) may show; it counts nobody.
        if shown == "NULL" || shown == "0" {
            continue;
        }
        let population = populations[code];
        let needed = if population < 25_000 { 20 } else { 10 };
        assert!(
            population >= 2_000,
            "{code}: {population} inhabitants shown"
        );
        assert!(
            truth[code] >= needed,
            "{code}: {} persons shown",
            truth[code]
        );
    }

    // A key computed from the code is no municipality niji knows the population of: it could
    // be the smallest, so nothing about it leaves, not even that it is there.
    let o = real(
        "SELECT substr(municipality, 1, 4) AS area, count(*) AS n FROM ndb.receipts GROUP BY 1",
    )
    .await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{}",
        o.message
    );
    assert!(column(&o, "area").is_empty() && o.small_groups_withheld);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnoses_are_counted_alike_whether_they_carry_their_receipts_person_or_join_it() {
    let f = Fixture::new(None).await;
    // A half year and a cohort: a filter on the receipts that the diagnoses must follow.
    narrow_project(&f).await;
    // Fine enough for cells under 10 persons and under 3 facilities, which only the persons and
    // facilities behind each diagnosis decide.
    let sql = "SELECT substr(icd10, 1, 2) AS code, count(*) AS n FROM ndb.diagnoses \
               GROUP BY substr(icd10, 1, 2) ORDER BY code";
    let ask_both = || async {
        [
            real(&f, sql).await,
            f.query_as("alice", "narrow", Mode::Real, sql).await,
        ]
    };
    let carried = ask_both().await;
    for o in &carried {
        assert!(
            matches!(o.status, Status::Released | Status::Suppressed),
            "{}",
            o.message
        );
    }
    assert_ne!(
        text_rows(&carried[0].batches),
        text_rows(&carried[1].batches),
        "the narrow project sees fewer diagnoses"
    );
    // Ingest stored each diagnosis's person, facility and month for this version of the
    // receipts. Once the manifest names another version, the views join the receipts instead.
    let manifest = f.data_dir().join("store/ndb/diagnoses/manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    assert!(
        m["parent_digest"].is_string(),
        "details carry their receipt's person"
    );
    m["parent_digest"] = serde_json::json!("a receipts version no longer in the store");
    std::fs::write(&manifest, serde_json::to_vec(&m).expect("json")).expect("manifest");
    let joined = ask_both().await;
    for (joined, carried) in joined.iter().zip(&carried) {
        assert_eq!(joined.status, carried.status, "{}", joined.message);
        assert_eq!(text_rows(&joined.batches), text_rows(&carried.batches));
        assert_eq!(reasons(joined), reasons(carried));
    }
}

/// What a result shows: its rows as text (masked cells NULL) and which cells are masked.
fn shown(o: &QueryOutcome) -> (Vec<Vec<String>>, Vec<(usize, String)>) {
    let rows = text_rows(&o.batches);
    let masked = o
        .suppressed
        .iter()
        .map(|c| (c.row, c.column.clone()))
        .collect();
    (rows, masked)
}

/// A HAVING on a shown aggregate chooses rows by its value: a masked row that is there, or not
/// there, would tell how many persons its cell has. Masked rows are shown whatever the HAVING
/// gives, so moving its bound tells nothing; rows that pass every rule are chosen as asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_having_on_a_shown_aggregate_tells_nothing_of_a_masked_cell() {
    let f = Fixture::new(None).await;
    let small = &small_prefecture(&f).await;
    for cmp in ["<", ">="] {
        let mut seen = Vec::new();
        for bound in [1, 2, 3, 5, 9, 10] {
            let sql = format!(
                "SELECT sex, count(*) AS n, count(DISTINCT pid) AS persons FROM ndb.receipts WHERE prefecture = '{small}' GROUP BY sex HAVING count(DISTINCT pid) {cmp} {bound} ORDER BY sex"
            );
            let o = real(&f, &sql).await;
            assert!(
                matches!(
                    o.status,
                    Status::Released | Status::Suppressed | Status::Held
                ),
                "{sql}: {:?} {}",
                o.status,
                o.message
            );
            seen.push((o.status, shown(&o)));
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "HAVING count(DISTINCT pid) {cmp} k gave different results for different k: {seen:?}"
        );
        let (_, (rows, masked)) = &seen[0];
        assert!(
            rows.is_empty() && masked.is_empty(),
            "the small prefecture's rows are withheld, whatever the HAVING gives: {rows:?}"
        );
    }
    // A benign HAVING: rows of 10+ persons come as asked (those below the bound go), the
    // masked ones stay, marked.
    let truth = per_prefecture(&f).await;
    let o = real(
        &f,
        "SELECT prefecture, count(DISTINCT pid) AS persons FROM ndb.receipts GROUP BY prefecture HAVING count(DISTINCT pid) >= 40 ORDER BY prefecture",
    )
    .await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{}",
        o.message
    );
    let masked = reasons(&o);
    let prefs = column(&o, "prefecture");
    let persons = column(&o, "persons");
    for (row, pref) in prefs.iter().enumerate() {
        let (p, _) = truth[pref];
        if !masked.contains_key(&row) {
            assert!(
                p >= 40,
                "{pref}: {p} persons, released though the HAVING leaves it out"
            );
            assert_eq!(persons[row], p.to_string());
        }
    }
    // No prefecture of 1–9 persons is there, whatever the HAVING gives.
    for (pref, (p, _)) in truth.iter().filter(|(_, (p, _))| *p < 10) {
        assert!(!prefs.contains(pref), "{pref} ({p} persons) shown");
    }
    let wanted = truth.values().filter(|(p, _)| *p >= 40).count();
    let released = prefs.len() - masked.len();
    assert!(released <= wanted && released > 0, "{released} of {wanted}");
    assert!(
        truth.values().any(|(p, _)| (10..40).contains(p)),
        "the fixture has prefectures the bound leaves out"
    );
    assert!(
        prefs.len() < truth.len(),
        "rows of 10+ persons below the bound are left out, as asked"
    );
}

/// A subquery that filters rows by an aggregate over a few persons makes the whole result tell
/// of them, however many persons the outer cell has: held. A subquery choosing persons by
/// their own aggregates (grouped by the pseudonym) is a cohort, and is checked as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subqueries_filtering_by_a_small_groups_aggregate_are_held() {
    let f = Fixture::new(None).await;
    let small = &small_prefecture(&f).await;
    for sql in [
        format!(
            "SELECT count(*) AS n FROM ndb.receipts WHERE sex IN (SELECT sex FROM ndb.receipts WHERE prefecture = '{small}' GROUP BY sex HAVING count(DISTINCT pid) < 3)"
        ),
        format!(
            "SELECT count(*) AS n FROM ndb.receipts WHERE points > (SELECT max(points) FROM ndb.receipts WHERE prefecture = '{small}')"
        ),
        format!(
            "SELECT count(*) AS n FROM ndb.receipts WHERE EXISTS (SELECT 1 FROM ndb.receipts r WHERE r.prefecture = '{small}' AND r.days > 20)"
        ),
        // A pseudonym compared by order, not identity, would tell of its value.
        format!(
            "SELECT count(*) AS n FROM ndb.receipts WHERE pid < (SELECT max(pid) FROM ndb.receipts WHERE prefecture = '{small}')"
        ),
        // A join keeping rows by an aggregated value is a HAVING too.
        format!(
            "SELECT a.sex, a.n FROM (SELECT sex, count(DISTINCT pid) AS n FROM ndb.receipts WHERE prefecture = '{small}' GROUP BY sex) a JOIN (SELECT 3 AS k) b ON a.n < b.k"
        ),
        format!(
            "SELECT a.sex, a.n FROM (SELECT sex, count(DISTINCT pid) AS n FROM ndb.receipts WHERE prefecture = '{small}' GROUP BY sex) a JOIN (SELECT 2 AS k) b ON a.n = b.k"
        ),
    ] {
        let o = real(&f, &sql).await;
        assert_eq!(o.status, Status::Held, "{sql}: {}", o.message);
        assert!(
            o.message.contains("cannot be checked yet"),
            "{sql}: {}",
            o.message
        );
    }
    let cohort = "SELECT sex, count(DISTINCT pid) AS persons FROM ndb.receipts WHERE pid IN (SELECT pid FROM ndb.receipts GROUP BY pid HAVING count(*) >= 2) GROUP BY sex ORDER BY sex";
    let o = real(&f, cohort).await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{:?} {}",
        o.status,
        o.message
    );
}
