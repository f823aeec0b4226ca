//! Disclosure control's shortcuts from the attacker's side: bounds on contributions, the
//! store's ceilings and strata, capped facility counts and filtering views must give the
//! verdicts that exact counting gives, checked against the store itself.

use std::collections::BTreeMap;

use niji_sandbox::{Mode, Status};

use crate::disclosure::{real, reasons, small_prefecture};
use crate::fixture::{
    Fixture, PROJECT, column, from_store, narrow_project, project_with, text_rows, with_policy,
};

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
