//! Disclosure control from the attacker's side: each test tries to get persons out of real
//! data and checks, against the store itself, that what leaves rests on enough persons.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use niji_sandbox::{LocalEngine, Mode, QueryOutcome, Status, Visiting};

use crate::fixture::{
    Fixture, OTHER, PROJECT, column, from_store, narrow_project, per_prefecture, project_with,
    text_rows, with_policy,
};

/// Row index → reasons of its masked cells.
fn reasons(o: &QueryOutcome) -> BTreeMap<usize, Vec<String>> {
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for c in &o.suppressed {
        out.entry(c.row).or_default().push(c.reason.clone());
    }
    out
}

async fn real(f: &Fixture, sql: &str) -> QueryOutcome {
    f.query(Mode::Real, sql).await
}

/// A prefecture of 1–9 persons in the fixture's store.
async fn small_prefecture(f: &Fixture) -> String {
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

/// alice's real-data query in the example project, through `v`.
async fn ask(v: &Visiting, sql: &str) -> QueryOutcome {
    v.query(&niji_sandbox::QueryRequest {
        user: "alice".into(),
        project: crate::fixture::PROJECT.into(),
        mode: Mode::Real,
        sql: sql.into(),
        via: "test",
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differencing_sees_releases_made_by_another_process() {
    let f = Fixture::new(None).await;
    // A second Visiting environment over the same platform database: the CLI beside a server.
    let second = Visiting::open(
        f.settings.clone(),
        Arc::new(LocalEngine),
        niji_testkit::dummy_store(),
    )
    .await
    .expect("second process");
    // The second process has checked something, so its ledger is loaded.
    let o = ask(
        &second,
        "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex",
    )
    .await;
    assert_eq!(o.status, Status::Released, "{}", o.message);
    // The first releases the total…
    let o = ask(
        &f.visiting,
        "SELECT count(DISTINCT pid) AS persons FROM ndb.receipts",
    )
    .await;
    assert_eq!(o.status, Status::Released, "{}", o.message);
    // …and the second does not release everyone but one.
    let o = ask(
        &second,
        "SELECT count(DISTINCT pid) AS persons FROM ndb.receipts WHERE pid <> (SELECT min(pid) FROM ndb.receipts)",
    )
    .await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    assert!(
        o.suppressed[0].reason.contains("differs from"),
        "{:?}",
        o.suppressed
    );
}

/// A process that recorded its own release skips reading it back only when no other release of
/// the project came in between; otherwise it must read them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_skips_its_own_release_only_when_nothing_came_between() {
    let f = Fixture::new(None).await;
    let db = f.visiting.platform().db();
    let project = crate::fixture::PROJECT;
    let set = |members: std::ops::Range<u32>| {
        niji_disclosure::udaf::encode_set(&members.collect::<roaring::RoaringBitmap>())
    };
    let seen = db
        .released_sets_since(project, 0)
        .await
        .expect("sets")
        .last()
        .map_or(0, |(id, _)| *id);
    let mine = db
        .record_released_sets(project, "mine", &[set(0..20), set(5..40)], seen)
        .await
        .expect("record")
        .expect("nothing came between");
    assert_eq!(
        db.released_sets_since(project, mine)
            .await
            .expect("sets")
            .len(),
        0
    );
    // Another project's release does not come between; another process's of this one does.
    db.record_released_sets(OTHER, "theirs", &[set(0..30)], 0)
        .await
        .expect("record");
    let after_other_project = db
        .record_released_sets(project, "mine again", &[set(0..50)], mine)
        .await
        .expect("record")
        .expect("another project's release is not this one's");
    db.record_released_sets(project, "another process", &[set(0..60)], 0)
        .await
        .expect("record");
    assert_eq!(
        db.record_released_sets(
            project,
            "mine once more",
            &[set(0..70)],
            after_other_project
        )
        .await
        .expect("record"),
        None,
        "a release of the project came between"
    );
    assert_eq!(
        db.released_sets_since(project, after_other_project)
            .await
            .expect("sets")
            .len(),
        2
    );
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

/// Dominance and p-percent run on bounds of the largest contributions first (one pass), and
/// exactly where the bounds do not clear a cell. Under strict rules (the two largest of a
/// fixture's sums by sex make 8–11% of them) each cell's verdict is the one the store's own
/// per-person sums give: bounds never release what the exact check masks (at 3%), nor mask
/// what it releases (at 12%), and the audit tells when the exact check ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dominance_on_bounds_is_checked_exactly_where_bounds_do_not_clear() {
    let sql = "SELECT sex, sum(points) AS s FROM ndb.receipts GROUP BY sex ORDER BY sex";
    for k in [3.0, 12.0] {
        let f = with_policy("dominance_k = 90.0", &format!("dominance_k = {k:.1}")).await;
        let o = real(&f, sql).await;
        assert!(
            matches!(o.status, Status::Released | Status::Suppressed),
            "{:?} {}",
            o.status,
            o.message
        );
        // Per sex: each person's sum, and each record without ID5 as a contributor of its own.
        let truth = from_store(
            &f,
            "SELECT CAST(sex AS VARCHAR), sum(abs(points)) FROM receipts WHERE person_idx IS NOT NULL GROUP BY sex, person_idx \
             UNION ALL SELECT CAST(sex AS VARCHAR), CAST(abs(points) AS BIGINT) FROM receipts WHERE person_idx IS NULL",
        )
        .await;
        let mut contributions: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for row in text_rows(&truth) {
            let sum: f64 = row[1].parse().expect("a sum");
            contributions.entry(row[0].clone()).or_default().push(sum);
        }
        let masked = reasons(&o);
        let mut dominated_rows = 0;
        for (row, (sex, value)) in column(&o, "sex").iter().zip(column(&o, "s")).enumerate() {
            let sums = contributions.get_mut(sex).expect("a sex of the store");
            sums.sort_by(|a, b| b.total_cmp(a));
            let total: f64 = sums.iter().sum();
            let dominated = sums[0] + sums[1] > total * k / 100.0;
            dominated_rows += usize::from(dominated);
            match masked.get(&row) {
                Some(why) if dominated => {
                    assert!(why[0].starts_with("dominance"), "{sex}: {why:?}")
                }
                None if dominated => {
                    panic!("{sex}: the two largest make over {k}%, and {value} left")
                }
                Some(why) => panic!("{sex}: masked at {k}%: {why:?}"),
                None => assert_eq!(value.parse::<f64>().ok(), Some(total), "{sex}"),
            }
        }
        let expected = if k < 5.0 { 2 } else { 0 };
        assert_eq!(
            dominated_rows, expected,
            "at {k}%, the fixture as described"
        );
        let audited = f
            .visiting
            .platform()
            .audit()
            .recent(20)
            .await
            .expect("audit");
        let entry = audited
            .iter()
            .find(|e| e.action == "query" && e.detail.contains(sql))
            .expect("audited");
        if dominated_rows > 0 {
            assert!(
                entry.detail.contains("\"rechecked\":true"),
                "bounds never mask, they send a cell to the exact check: {}",
                entry.detail
            );
        }
    }
}

/// Cells over groups of one person (receipts per person, then persons per count of receipts)
/// rest on all their persons' facilities. The check hands on one facility a person and, where
/// those fall short of the minimum, counts them all: a cell leaves exactly when its persons
/// visited enough facilities, even where it has fewer persons than facilities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cells_over_persons_leave_exactly_when_their_persons_visited_enough_facilities() {
    let sql = "SELECT n, count(*) AS persons FROM (SELECT pid, count(*) AS n FROM ndb.receipts \
               WHERE pid IS NOT NULL GROUP BY pid) t GROUP BY n ORDER BY n";
    let truth_sql = "WITH per AS (SELECT person_idx, count(*) AS n FROM receipts \
                     WHERE person_idx IS NOT NULL GROUP BY person_idx) \
                     SELECT CAST(per.n AS VARCHAR), count(DISTINCT per.person_idx), \
                     count(DISTINCT r.facility_code) FROM per JOIN receipts r \
                     ON r.person_idx = per.person_idx GROUP BY per.n";
    // The same 400 persons as `with_policy` seeds, under the published policy.
    let probe = Fixture::new(None).await;
    // n → (persons, facilities)
    let truth: BTreeMap<String, (i64, i64)> = text_rows(&from_store(&probe, truth_sql).await)
        .into_iter()
        .map(|r| {
            let n = |i: usize| r[i].parse::<i64>().expect("count");
            (r[0].clone(), (n(1), n(2)))
        })
        .collect();
    drop(probe);
    // A cell of enough persons who visited more facilities than they are: one facility each
    // cannot reach its count.
    let minimum = truth
        .values()
        .filter(|(p, f)| *p >= 10 && f > p)
        .map(|(_, f)| *f)
        .min()
        .unwrap_or_else(|| panic!("a cell of fewer persons than facilities: {truth:?}"));
    let f = with_policy("min_facilities = 3", &format!("min_facilities = {minimum}")).await;
    let o = real(&f, sql).await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{}",
        o.message
    );
    let masked = reasons(&o);
    for (row, n) in column(&o, "n").iter().enumerate() {
        let (persons, facilities) = truth[n];
        let why = masked.get(&row);
        assert!(persons >= 10, "{n}: a row of {persons} persons");
        if facilities < minimum {
            let expected = format!("fewer than {minimum} facilities");
            assert!(
                why.is_some_and(|w| w[0] == expected),
                "{n}: {facilities} facilities: {why:?}"
            );
        } else {
            assert_eq!(why, None, "{n}: {persons} persons, {facilities} facilities");
            assert_eq!(column(&o, "persons")[row], persons.to_string());
        }
    }
    assert_eq!(
        column(&o, "n").len(),
        truth.values().filter(|(p, _)| *p >= 10).count(),
        "a row for each count of 10 or more persons"
    );
    let audited = f
        .visiting
        .platform()
        .audit()
        .recent(20)
        .await
        .expect("audit");
    let entry = audited
        .iter()
        .find(|e| e.action == "query" && e.detail.contains("GROUP BY pid"))
        .expect("audited");
    assert!(
        entry.detail.contains("\"rechecked\":true"),
        "one facility a person fell short, and the cell was counted again: {}",
        entry.detail
    );
}

/// Per sex: the two largest contributions to the points (each person's sum, each record
/// without ID5 on its own) and the total; and the two largest any person has over the store
/// (what ingest's ceilings hold).
async fn points_by_sex_and_in_all(f: &Fixture) -> (BTreeMap<String, (f64, f64)>, f64) {
    let per_person = from_store(
        f,
        "SELECT CAST(min(sex) AS VARCHAR), CAST(count(DISTINCT sex) AS VARCHAR), sum(abs(points)) FROM receipts WHERE person_idx IS NOT NULL GROUP BY person_idx \
         UNION ALL SELECT CAST(sex AS VARCHAR), '1', CAST(abs(points) AS BIGINT) FROM receipts WHERE person_idx IS NULL",
    )
    .await;
    let mut by_sex: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut all = Vec::new();
    for row in text_rows(&per_person) {
        assert_eq!(row[1], "1", "a person of one sex in the fixture: {row:?}");
        let sum: f64 = row[2].parse().expect("a sum");
        by_sex.entry(row[0].clone()).or_default().push(sum);
        all.push(sum);
    }
    let largest_two = |sums: &mut Vec<f64>| {
        sums.sort_by(|a, b| b.total_cmp(a));
        sums[0] + sums[1]
    };
    let shares = by_sex
        .into_iter()
        .map(|(sex, mut sums)| {
            let total: f64 = sums.iter().sum();
            (sex, (largest_two(&mut sums), total))
        })
        .collect();
    (shares, largest_two(&mut all))
}

/// Magnitudes over a person-level view are bounded by the store's ceilings (each person's
/// total over the whole table, summed at ingest), with no sum per person at query time. Where
/// they clear a cell it leaves without a recheck; under a dominance rule they cannot clear
/// (between the largest share any sex has and what the ceilings allow) the query is checked
/// exactly, and every verdict is the one the store's own per-person sums give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceilings_bound_magnitudes_without_changing_a_verdict() {
    let sql =
        "SELECT sex, sum(points) AS s, avg(days) AS d FROM ndb.receipts GROUP BY sex ORDER BY sex";
    let audited = |f: &Fixture| {
        let visiting = f.visiting.clone();
        async move {
            let entries = visiting.platform().audit().recent(20).await.expect("audit");
            entries
                .into_iter()
                .find(|e| e.action == "query" && e.detail.contains(sql))
                .expect("audited")
                .detail
        }
    };
    let probe = Fixture::new(None).await;
    let (by_sex, ceiling_two) = points_by_sex_and_in_all(&probe).await;
    let o = real(&probe, sql).await;
    assert_eq!(o.status, Status::Released, "{}", o.message);
    for (sex, s) in column(&o, "sex").iter().zip(column(&o, "s")) {
        assert_eq!(s.parse::<f64>().ok(), Some(by_sex[sex].1), "{sex}");
    }
    let detail = audited(&probe).await;
    assert!(detail.contains("\"ceiled\":2"), "{detail}");
    assert!(detail.contains("\"rechecked\":false"), "{detail}");
    drop(probe);

    let exact_most = by_sex
        .values()
        .map(|(two, total)| two / total)
        .fold(0.0, f64::max);
    let ceiled_most = by_sex
        .values()
        .map(|(_, total)| ceiling_two / total)
        .fold(0.0, f64::max);
    assert!(
        exact_most < ceiled_most,
        "the ceilings are above some sex's own largest: {by_sex:?}, {ceiling_two}"
    );
    let k = 100.0 * (exact_most + ceiled_most) / 2.0;
    let f = with_policy("dominance_k = 90.0", &format!("dominance_k = {k:.4}")).await;
    let o = real(&f, sql).await;
    assert_eq!(o.status, Status::Released, "at {k}%: {}", o.message);
    let detail = audited(&f).await;
    assert!(detail.contains("\"ceiled\":2"), "{detail}");
    assert!(
        detail.contains("\"rechecked\":true"),
        "ceilings that do not clear a cell send it to the exact check: {detail}"
    );
}

/// The audit entry of the last query of `sql`.
async fn audit_of(f: &Fixture, sql: &str) -> String {
    f.visiting
        .platform()
        .audit()
        .recent(50)
        .await
        .expect("audit")
        .into_iter()
        .find(|e| e.action == "query" && e.detail.contains(sql))
        .expect("audited")
        .detail
}

/// Runs `sql` as alice in `project`, which checks it (released or suppressed), and says
/// whether its cells came from strata.
async fn checked_from_strata(f: &Fixture, project: &str, sql: &str) -> bool {
    let o = f.query_as("alice", project, Mode::Real, sql).await;
    assert!(
        matches!(o.status, Status::Released | Status::Suppressed),
        "{sql}: {}",
        o.message
    );
    let detail = audit_of(f, sql).await;
    assert!(detail.contains("\"stratified\":"), "{detail}");
    !detail.contains("\"stratified\":0")
}

/// Cells grouped and filtered on coded columns come from the store's strata (`stratified` in
/// the audit entry, no row's person read) and get the verdicts their rows give: the same cells
/// through a filter no stratum decides (on a column that is not coded, true for every row) are
/// counted row by row in a project of their own, and every value and every mask agrees. An
/// aggregation strata cannot decide (a filter on a magnitude, a minimum, a join) is counted
/// row by row; taking a small prefecture away from a released total is differencing, whether
/// strata count it or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strata_give_the_verdicts_the_rows_give() {
    let f = Fixture::new(None).await;
    project_with(&f, "rowwise", &["alice"], &[]).await;
    let pairs = [
        (
            "SELECT prefecture, sex, setting, count(*) AS n, sum(points) AS p, avg(days) AS d FROM ndb.receipts GROUP BY prefecture, sex, setting ORDER BY prefecture, sex, setting",
            "SELECT prefecture, sex, setting, count(*) AS n, sum(points) AS p, avg(days) AS d FROM ndb.receipts WHERE days = days GROUP BY prefecture, sex, setting ORDER BY prefecture, sex, setting",
        ),
        (
            "SELECT substr(icd10, 1, 3) AS code, count(*) AS n FROM ndb.diagnoses WHERE is_main GROUP BY substr(icd10, 1, 3) ORDER BY n DESC, code LIMIT 20",
            "SELECT substr(icd10, 1, 3) AS code, count(*) AS n FROM ndb.diagnoses WHERE is_main AND receipt_key IS NOT NULL GROUP BY substr(icd10, 1, 3) ORDER BY n DESC, code LIMIT 20",
        ),
        (
            "SELECT copay_rate, count(DISTINCT pid) AS persons FROM ndb.receipts WHERE sex = 2 AND setting = 2 GROUP BY copay_rate ORDER BY copay_rate",
            "SELECT copay_rate, count(DISTINCT pid) AS persons FROM ndb.receipts WHERE sex = 2 AND setting = 2 AND days = days GROUP BY copay_rate ORDER BY copay_rate",
        ),
    ];
    let mut shown = Vec::new();
    for (coded, rowwise) in pairs {
        let by_strata = real(&f, coded).await;
        let by_rows = f.query_as("alice", "rowwise", Mode::Real, rowwise).await;
        assert_eq!(
            by_strata.status, by_rows.status,
            "{coded}: {}",
            by_strata.message
        );
        assert!(
            matches!(by_strata.status, Status::Released | Status::Suppressed),
            "{coded}: {}",
            by_strata.message
        );
        assert_eq!(
            text_rows(&by_strata.batches),
            text_rows(&by_rows.batches),
            "{coded}"
        );
        assert_eq!(reasons(&by_strata), reasons(&by_rows), "{coded}");
        shown.push(text_rows(&by_strata.batches).len());
        let detail = audit_of(&f, coded).await;
        assert!(detail.contains("\"stratified\":1"), "{detail}");
        let detail = audit_of(&f, rowwise).await;
        assert!(detail.contains("\"stratified\":0"), "{detail}");
    }
    // Small groups are withheld alike by strata and by rows: the first pair shows fewer rows
    // than the store has groups.
    let groups: usize = text_rows(
        &from_store(
            &f,
            "SELECT count(*) FROM (SELECT DISTINCT prefecture, sex, setting FROM receipts) g",
        )
        .await,
    )[0][0]
        .parse()
        .expect("groups");
    assert!(
        shown[0] < groups,
        "some group of the pairs rests on too few persons: {shown:?} of {groups}"
    );

    for rowwise in [
        "SELECT sex, count(*) AS n FROM ndb.receipts WHERE points > 100 GROUP BY sex",
        "SELECT sex, min(points) AS lo FROM ndb.receipts GROUP BY sex",
        "SELECT r.sex, count(*) AS n FROM ndb.receipts r JOIN ndb.diagnoses d ON d.receipt_key = r.record_key GROUP BY r.sex",
        "SELECT sex, count(*) AS n FROM (SELECT * FROM ndb.receipts LIMIT 500) t GROUP BY sex",
        "SELECT claim_ym, count(*) AS n FROM ndb.receipts GROUP BY claim_ym",
    ] {
        assert!(
            !checked_from_strata(&f, PROJECT, rowwise).await,
            "{rowwise}"
        );
    }

    // In a project that released nothing yet (the tables above released totals that the
    // withheld groups are missing from, and differencing knows them).
    project_with(&f, "fresh", &["alice"], &[]).await;
    let small = small_prefecture(&f).await;
    let total = "SELECT count(*) AS n FROM ndb.receipts";
    let o = f.query_as("alice", "fresh", Mode::Real, total).await;
    assert_eq!(o.status, Status::Released, "{}", o.message);
    let all_but_few =
        format!("SELECT count(*) AS n FROM ndb.receipts WHERE prefecture <> '{small}'");
    let o = f.query_as("alice", "fresh", Mode::Real, &all_but_few).await;
    assert_eq!(o.status, Status::Suppressed, "{}", o.message);
    assert_eq!(column(&o, "n"), ["NULL"]);
    assert!(
        o.suppressed[0].reason.contains("differs from"),
        "{:?}",
        o.suppressed
    );
    let detail = audit_of(&f, &all_but_few).await;
    assert!(detail.contains("\"stratified\":1"), "{detail}");
}

/// A project whose views filter rows (a period narrower than the store, a cohort) has no
/// strata: a stratum's persons would include rows the project does not see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_filters_rows_is_counted_row_by_row() {
    let f = Fixture::new(None).await;
    narrow_project(&f).await;
    let sql = "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex";
    assert!(checked_from_strata(&f, PROJECT, sql).await);
    assert!(!checked_from_strata(&f, "narrow", sql).await);
}
