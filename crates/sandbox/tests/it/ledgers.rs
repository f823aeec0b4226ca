//! The release ledger across processes: a release made by one process (the CLI beside a
//! server) is differenced against by the other, and a ledger skips reading back its own
//! release only when nothing came between.

use std::sync::Arc;

use niji_sandbox::{LocalEngine, Mode, QueryOutcome, Scope, Status, Visiting};

use crate::fixture::{Fixture, OTHER};

/// alice's real-data query in the example project, through `v`.
async fn ask(v: &Visiting, sql: &str) -> QueryOutcome {
    v.query(&niji_sandbox::QueryRequest {
        user: "alice".into(),
        scope: Scope::project(crate::fixture::PROJECT),
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
