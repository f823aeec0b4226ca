//! Feasibility counts on a synthetic 難病DB, checked against the stored Parquet and attacked:
//! two counts that differ by one condition, the same count asked again and again, and a
//! sequence of counts that narrows down to one patient.

#![allow(clippy::unwrap_used)]

use niji_governance::{SHELL_ACTOR_PREFIX, UserRole};
use niji_sandbox::{CountRequest, SandboxError};

use crate::fixture::{Fixture, from_store, text_rows};

const PATIENTS: u64 = 20_000;
/// Quotas out of the way, the lockout after three withheld counts.
const GENEROUS: &str = "rounding = 10\nper_minute = 1000\nper_week = 1000\nper_organisation_week = 1000\nlockout_after = 3\nlockout_window_hours = 24\n";

async fn registry(feasibility: Option<&str>) -> Fixture {
    let f = Fixture::with(
        PATIENTS,
        niji_testkit::Overrides {
            nanbyo_registry: true,
            feasibility,
            ..Default::default()
        },
    )
    .await;
    let p = f.visiting.platform();
    let shell = format!("{SHELL_ACTOR_PREFIX}test");
    for org in ["pharma-a", "pharma-b"] {
        p.add_organisation(&shell, org, org).await.unwrap();
    }
    for (name, org) in [
        ("paula", "pharma-a"),
        ("petra", "pharma-a"),
        ("quinn", "pharma-b"),
    ] {
        p.add_user("test", name, UserRole::Analyst).await.unwrap();
        p.set_organisation(&shell, name, org).await.unwrap();
    }
    p.add_user("test", "cathy", UserRole::Custodian)
        .await
        .unwrap();
    p.approve_dataset_organisation("cathy", "pharma-a")
        .await
        .unwrap();
    f
}

/// paula's audited counts, those whose detail contains `detail` if given.
async fn counts_of(v: &niji_sandbox::Visiting, detail: Option<&str>) -> Vec<niji_audit::Entry> {
    v.platform()
        .audit()
        .entries_since(
            Some("paula"),
            niji_governance::FEASIBILITY_COUNT,
            "2000-01-01T00:00:00Z",
            detail,
        )
        .await
        .unwrap()
}

fn count(disease_no: u16, fiscal_year: u16) -> CountRequest {
    CountRequest::new(disease_no, fiscal_year)
}

/// The persons a count rests on, from the store with its own person index.
async fn truth(f: &Fixture, c: &CountRequest) -> u64 {
    let age = "(s.fiscal_year - CAST(date_part('year', s.birth_date) AS INT))";
    let mut conditions = vec![
        "s.person_idx IS NOT NULL".to_string(),
        format!("s.disease_no = {}", c.disease_no),
        format!("s.fiscal_year = {}", c.fiscal_year),
    ];
    for (bound, op, column) in [
        (c.severity_from, ">=", "s.severity_stage"),
        (c.severity_to, "<=", "s.severity_stage"),
        (c.age_from, ">=", age),
        (c.age_to, "<=", age),
    ] {
        if let Some(b) = bound {
            conditions.push(format!("{column} {op} {b}"));
        }
    }
    if let Some(p) = &c.prefecture {
        conditions.push(format!("m.prefecture = '{p}'"));
    }
    if c.new_only {
        conditions.push("s.application_kind = 1".into());
    }
    let sql = format!(
        "SELECT count(DISTINCT s.person_idx) FROM surveys s JOIN municipalities m ON s.municipality = m.municipality WHERE {}",
        conditions.join(" AND ")
    );
    let sql = if c.prefecture.is_some() {
        sql
    } else {
        sql.replace(
            " JOIN municipalities m ON s.municipality = m.municipality",
            "",
        )
    };
    text_rows(&from_store(f, &sql).await)[0][0].parse().unwrap()
}

fn rounded(n: u64) -> String {
    if n < 10 {
        "<10".into()
    } else {
        ((n + 5) / 10 * 10).to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_the_stores_rounded_and_small_ones_show_as_under_ten() {
    let f = registry(Some(GENEROUS)).await;
    let v = &f.visiting;
    let mut wide = count(6, 2021);
    let answer = v.feasibility_count("paula", &wide).await.unwrap();
    let n = truth(&f, &wide).await;
    assert!(n >= 100, "a common disease: {n}");
    assert_eq!(answer.patients, rounded(n));
    wide.prefecture = Some("13".into());
    wide.severity_from = Some(3);
    let n = truth(&f, &wide).await;
    assert_eq!(
        v.feasibility_count("paula", &wide).await.unwrap().patients,
        rounded(n)
    );
    // A rare disease: fewer than ten, whatever the exact number (none included).
    let rare = (1..=348).map(|d| count(d, 2021)).collect::<Vec<_>>();
    let mut shown_small = 0;
    for c in rare.iter().rev().take(40) {
        if truth(&f, c).await < 10 {
            assert_eq!(
                v.feasibility_count("paula", c).await.unwrap().patients,
                "<10"
            );
            shown_small += 1;
        }
    }
    assert!(
        shown_small > 0,
        "some diseases have fewer than ten patients"
    );
    // Every count is audited with what it showed.
    let audited = counts_of(v, None).await;
    assert_eq!(audited.len(), 2 + shown_small);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_counts_that_differ_by_one_condition_are_not_both_shown() {
    let f = registry(Some(GENEROUS)).await;
    let v = &f.visiting;
    // A count, and the same with an upper age that leaves out one to nine of its patients.
    let base = count(97, 2022);
    let all = truth(&f, &base).await;
    let mut narrowed = base.clone();
    let mut found = None;
    for age in (20..=120).rev() {
        narrowed.age_to = Some(age);
        let n = truth(&f, &narrowed).await;
        if (1..10).contains(&(all - n)) && n >= 10 {
            found = Some(n);
            break;
        }
    }
    let n = found.expect("an age bound that leaves out fewer than ten");
    assert_eq!(
        v.feasibility_count("paula", &base).await.unwrap().patients,
        rounded(all)
    );
    // Shown, the two would give away the few left out: the second is withheld, for this
    // analyst and for a colleague of the same organisation alike.
    assert_eq!(
        v.feasibility_count("paula", &narrowed)
            .await
            .unwrap()
            .patients,
        "withheld"
    );
    assert_eq!(
        v.feasibility_count("petra", &narrowed)
            .await
            .unwrap()
            .patients,
        "withheld"
    );
    assert!(n >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_count_asked_again_gives_the_same_answer_until_the_quota_ends_it() {
    // The published policy: 3 a minute.
    let f = registry(None).await;
    let v = &f.visiting;
    let c = count(6, 2020);
    let first = v.feasibility_count("paula", &c).await.unwrap().patients;
    for _ in 0..2 {
        assert_eq!(
            v.feasibility_count("paula", &c).await.unwrap().patients,
            first,
            "nothing to average"
        );
    }
    let e = v.feasibility_count("paula", &c).await.unwrap_err();
    assert!(e.public_message().contains("3 counts a minute"), "{e}");
    // Not an analyst of an approved organisation: no count at all.
    for user in ["quinn", "alice", "cathy"] {
        let e = v.feasibility_count(user, &c).await.unwrap_err();
        assert!(matches!(e, SandboxError::Governance(_)), "{user}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_narrowing_to_one_patient_shows_no_difference_under_ten_and_locks_out() {
    let f = registry(Some(GENEROUS)).await;
    let v = &f.visiting;
    // One patient of a common disease, and counts closing in on them.
    let row = text_rows(
        &from_store(
            &f,
            "SELECT s.fiscal_year - CAST(date_part('year', s.birth_date) AS INT), s.severity_stage, m.prefecture
             FROM surveys s JOIN municipalities m ON s.municipality = m.municipality
             WHERE s.disease_no = 6 AND s.fiscal_year = 2022 AND s.person_idx IS NOT NULL
             ORDER BY s.record_key LIMIT 1",
        )
        .await,
    )
    .remove(0);
    let (age, stage): (u8, u8) = (row[0].parse().unwrap(), row[1].parse().unwrap());
    let mut steps = Vec::new();
    let mut c = count(6, 2022);
    steps.push(c.clone());
    c.prefecture = Some(row[2].clone());
    steps.push(c.clone());
    for width in [30u8, 15, 8, 4, 2, 1, 0] {
        c.age_from = Some(age.saturating_sub(width));
        c.age_to = Some(age.saturating_add(width).min(110));
        steps.push(c.clone());
    }
    c.severity_from = Some(stage);
    c.severity_to = Some(stage);
    steps.push(c.clone());
    let mut released: Vec<u64> = Vec::new();
    let mut locked = false;
    for step in &steps {
        match v.feasibility_count("paula", step).await {
            Ok(a) => {
                let n = truth(&f, step).await;
                if a.patients == "withheld" || a.patients == "<10" {
                    continue;
                }
                assert_eq!(a.patients, rounded(n));
                // Nested counts: shown ones differ by none or by ten or more.
                for earlier in &released {
                    let d = earlier - n;
                    assert!(d == 0 || d >= 10, "{earlier} then {n}");
                }
                released.push(n);
            }
            Err(e) => {
                assert!(e.public_message().contains("locked out"), "{e}");
                locked = true;
                break;
            }
        }
    }
    let last = truth(&f, steps.last().unwrap()).await;
    assert!(
        last < 10,
        "the sequence ends at a handful of patients: {last}"
    );
    // Locked out within the sequence, or at the latest on the next count.
    if !locked {
        let withheld = counts_of(v, Some("\"differencing\":true")).await.len();
        let next = v.feasibility_count("paula", &count(97, 2019)).await;
        assert_eq!(next.is_err(), withheld >= 3, "{withheld} withheld");
    }
}
