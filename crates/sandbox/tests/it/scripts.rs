//! Brought-in scripts through the Visiting environment: the guard refuses a bundle that reads
//! beyond the project's catalog before anything is kept, and a run executes only the files of
//! an approved version, each statement through the chokepoint.

#![allow(clippy::unwrap_used)]

use niji_governance::{GovernanceError, ScriptFile};
use niji_sandbox::{Mode, SandboxError, Status};

use crate::fixture::{Fixture, PROJECT, project_with};

fn file(name: &str, sql: &str) -> ScriptFile {
    ScriptFile {
        name: name.into(),
        sql: sql.into(),
    }
}

fn monthly(count: &str) -> Vec<ScriptFile> {
    vec![
        file(
            "01_visits.sql",
            "-- the cohort's visits\nCREATE OR REPLACE TABLE work.visits AS SELECT pid, claim_ym FROM ndb.receipts;",
        ),
        file("02_count.sql", count),
    ]
}

fn problems(r: Result<impl std::fmt::Debug, SandboxError>) -> Vec<String> {
    match r {
        Err(SandboxError::Governance(GovernanceError::Invalid(p))) => {
            p.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected the bundle refused by file, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_checks_every_statement_of_a_bundle_and_runs_need_the_approved_files() {
    let f = Fixture::new(None).await;
    let v = &f.visiting;
    let count = "SELECT claim_ym, count(*) AS n FROM work.visits GROUP BY claim_ym";

    // Statically refused, each problem named by its file; nothing is kept.
    let beyond = vec![
        file("01.sql", "SELECT count(*) FROM nanbyo.surveys"),
        file("02.sql", "SELECT kana_name FROM ndb.receipts"),
        file("03.sql", "SELECT * FROM work.never_created"),
        file("04.sql", "COPY (SELECT 1) TO '/tmp/out.csv'"),
        file("05.sql", "-- nothing"),
        file("06.sql", "SELEC 1"),
    ];
    let found = problems(v.submit_script("alice", PROJECT, "probe", &beyond).await);
    for i in 0..6 {
        assert!(
            found.iter().any(|p| p.starts_with(&format!("files[{i}]"))),
            "files[{i}] not named: {found:?}"
        );
    }
    assert!(
        v.platform()
            .scripts("alice", PROJECT)
            .await
            .unwrap()
            .is_empty()
    );
    // A work table the bundle itself creates is known to the statements after it, and the
    // check left the project's own workspace alone.
    let s = v
        .submit_script("alice", PROJECT, "monthly", &monthly(count))
        .await
        .unwrap();
    assert_eq!(s.version, 1);
    let tables = v
        .project_tables("alice", PROJECT, Mode::Dummy)
        .await
        .unwrap();
    assert!(
        !tables.iter().any(|(t, _)| t.contains("visits")),
        "{tables:?}"
    );

    // Not approved: nothing runs, not even the first statement.
    let e = v
        .run_script("alice", PROJECT, "monthly", &monthly(count), Mode::Dummy)
        .await
        .unwrap_err();
    assert!(e.public_message().contains("not approved"), "{e}");
    let tables = v
        .project_tables("alice", PROJECT, Mode::Dummy)
        .await
        .unwrap();
    assert!(!tables.iter().any(|(t, _)| t.contains("visits")));

    // A member of the project cannot approve it; a committee member can.
    assert!(
        v.platform()
            .decide_script("bob", PROJECT, "monthly", 1, true, "")
            .await
            .is_err()
    );
    v.platform()
        .decide_script("dora", PROJECT, "monthly", 1, true, "")
        .await
        .unwrap();
    let ran = v
        .run_script("alice", PROJECT, "monthly", &monthly(count), Mode::Dummy)
        .await
        .unwrap();
    assert_eq!(ran.len(), 2);
    assert!(
        ran.iter().all(|o| o.status == Status::Ok),
        "{:?}",
        ran.iter().map(|o| &o.message).collect::<Vec<_>>()
    );
    assert!(ran[1].batches.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
    // On real data each statement passes disclosure control like any query: a count over a
    // work table is held, as it would be typed by hand.
    let real = v
        .run_script("alice", PROJECT, "monthly", &monthly(count), Mode::Real)
        .await
        .unwrap();
    assert_eq!(real.len(), 2);
    assert_eq!(real[0].status, Status::Ok, "{}", real[0].message);
    assert_eq!(real[1].status, Status::Held, "{}", real[1].message);

    // One character changed: refused until the new version is approved.
    let changed = monthly(&format!("{count} ORDER BY claim_ym"));
    let e = v
        .run_script("alice", PROJECT, "monthly", &changed, Mode::Dummy)
        .await
        .unwrap_err();
    assert!(e.public_message().contains("approved again"), "{e}");
    v.submit_script("alice", PROJECT, "monthly", &changed)
        .await
        .unwrap();
    v.platform()
        .decide_script("erin", PROJECT, "monthly", 2, true, "")
        .await
        .unwrap();
    assert_eq!(
        v.run_script("bob", PROJECT, "monthly", &changed, Mode::Dummy)
            .await
            .unwrap()
            .len(),
        2
    );
    // A committee member who is also a member of the project decides nothing on its scripts.
    project_with(&f, "joint", &["alice", "dora"], &[]).await;
    v.submit_script("alice", "joint", "monthly", &changed)
        .await
        .unwrap();
    let own = v
        .platform()
        .decide_script("dora", "joint", "monthly", 1, true, "")
        .await
        .unwrap_err();
    assert!(own.to_string().contains("member of joint"), "{own}");
    // File names are plain and distinct: no name makes two bundles one.
    let mut odd = changed.clone();
    odd[0].name = "01_visits.sql\u{0}x".into();
    assert!(
        v.submit_script("alice", PROJECT, "monthly", &odd)
            .await
            .is_err()
    );
    odd[0].name = odd[1].name.clone();
    assert!(
        v.submit_script("alice", PROJECT, "monthly", &odd)
            .await
            .is_err()
    );

    // Someone outside the project runs nothing, approved or not.
    assert!(
        v.run_script("carol", PROJECT, "monthly", &changed, Mode::Dummy)
            .await
            .is_err()
    );
}
