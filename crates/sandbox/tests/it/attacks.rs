//! Attacks the .slt corpus cannot express: other users and projects, logging of refusals,
//! limits (time, memory, concurrency), and that the environment keeps serving afterwards.

use niji_sandbox::{Mode, Status};

use crate::fixture::{Fixture, OTHER, PROJECT};

const HEALTHY: &str = "SELECT count(*) AS n FROM ndb.receipts";

async fn assert_healthy(f: &Fixture) {
    let o = f.query(Mode::Dummy, HEALTHY).await;
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    assert!(o.row_count == Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_projects_and_non_members_are_refused_and_logged() {
    let f = Fixture::new(None).await;
    // carol is a member of OTHER only; bob of PROJECT only.
    for (user, project) in [
        ("carol", PROJECT),
        ("bob", OTHER),
        ("mallory", PROJECT),
        ("alice", "no-such"),
    ] {
        for mode in [Mode::Dummy, Mode::Real] {
            let o = f.query_as(user, project, mode, HEALTHY).await;
            assert_eq!(
                o.status,
                Status::Refused,
                "{user} in {project}: {}",
                o.message
            );
            assert!(o.message.contains("not permitted"), "{}", o.message);
            assert!(o.batches.is_empty());
        }
    }
    // A workspace table of one project is invisible to the other, even by name.
    let made = f
        .query(
            Mode::Dummy,
            "CREATE TABLE work.secret AS SELECT pid, count(*) AS n FROM ndb.receipts GROUP BY pid",
        )
        .await;
    assert_eq!(made.status, Status::Ok, "{}", made.message);
    let o = f
        .query_as("carol", OTHER, Mode::Dummy, "SELECT * FROM work.secret")
        .await;
    assert_eq!(o.status, Status::Refused);
    assert!(o.message.contains("not found"), "{}", o.message);
    let o = f
        .query_as(
            "carol",
            OTHER,
            Mode::Dummy,
            "SELECT * FROM niji.work.secret",
        )
        .await;
    assert_eq!(o.status, Status::Refused);
    let refusals = f
        .visiting
        .platform()
        .audit()
        .recent(200)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "query" && e.detail.contains("\"outcome\":\"refused\""))
        .count();
    // 4 user/project pairs in 2 modes, and 2 attempts at the other project's workspace.
    assert_eq!(refusals, 10, "every refusal is logged");
    assert_healthy(&f).await;
}

// Two worker threads: a runaway that kept its thread after cancellation would starve the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_queries_are_cancelled_and_the_rest_keep_running() {
    let f = Fixture::new(Some(
        "memory_per_query_mb = 256\ntimeout_seconds = 2\nconcurrent_per_project = 1\nconcurrent_overall = 2\nqueue_wait_ms = 300\nmax_result_rows = 1000\n",
    ))
    .await;
    assert_healthy(&f).await;
    // A huge cross join: cancelled at the time limit.
    let started = std::time::Instant::now();
    let o = f
        .query(
            Mode::Dummy,
            // Not count(*): DataFusion answers that from file statistics without joining.
            "SELECT max(a.points + b.days) FROM ndb.receipts a CROSS JOIN ndb.receipts b CROSS JOIN ndb.diagnoses c",
        )
        .await;
    assert_eq!(o.status, Status::Error, "{}", o.message);
    assert!(o.message.contains("cancelled"), "{}", o.message);
    assert!(started.elapsed().as_secs() < 10, "cancelled promptly");
    // Rows beyond the result limit are an error, never a silent cut.
    let o = f.query(Mode::Dummy, "SELECT pid FROM ndb.receipts").await;
    assert_eq!(o.status, Status::Error);
    assert!(o.message.contains("more than 1000 rows"), "{}", o.message);
    // Concurrency: with one slot per project, a second query waits, then is refused as busy.
    let slow = "SELECT max(a.points + b.days) FROM ndb.receipts a CROSS JOIN ndb.receipts b CROSS JOIN ndb.diagnoses c";
    let (a, b) = tokio::join!(f.query(Mode::Dummy, slow), async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        f.query(Mode::Dummy, HEALTHY).await
    });
    assert!(a.message.contains("cancelled"), "{}", a.message);
    assert_eq!(b.status, Status::Refused);
    assert!(b.message.contains("busy"), "{}", b.message);
    // Another project is not blocked by this one's slot.
    let o = f.query_as("carol", OTHER, Mode::Dummy, HEALTHY).await;
    assert_eq!(o.status, Status::Ok, "{}", o.message);
    assert_healthy(&f).await;
    let log = f
        .visiting
        .platform()
        .audit()
        .recent(50)
        .await
        .expect("audit");
    assert!(
        log.iter().any(|e| e.detail.contains("cancelled")),
        "the cancellation is logged"
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
async fn a_query_beyond_its_memory_fails_cleanly() {
    let f = Fixture::new(Some(
        "memory_per_query_mb = 1\ntimeout_seconds = 60\nconcurrent_per_project = 2\nconcurrent_overall = 4\nqueue_wait_ms = 300\nmax_result_rows = 100000\n",
    ))
    .await;
    // The hash table of a join over all diagnoses cannot fit 1 MiB (joins do not spill).
    let o = f
        .query(
            Mode::Dummy,
            "SELECT count(*) FROM ndb.diagnoses d JOIN ndb.diagnoses d2 ON d2.receipt_key = d.receipt_key JOIN ndb.receipts r ON r.record_key = d.receipt_key",
        )
        .await;
    assert_eq!(o.status, Status::Error, "{}", o.message);
    assert!(o.message.contains("memory"), "{}", o.message);
    assert_healthy(&f).await;
}
