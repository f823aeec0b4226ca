//! A runaway query and the others: it runs on threads of its own, demoted once it runs long,
//! and its threads end with it.

use std::time::{Duration, Instant};

use niji_sandbox::{DEMOTED_NICE, Mode, Status};

use crate::fixture::{Fixture, OTHER, PROJECT};

const RUNAWAY: &str = "SELECT max(a.points + b.days) FROM ndb.receipts a CROSS JOIN ndb.receipts b CROSS JOIN ndb.diagnoses c";

/// The nice value of one of this process's threads (field 19 of its `stat`), if it is alive.
fn nice_of(thread: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{thread}/stat")).ok()?;
    // After the command name in parentheses: state is field 3, nice is field 19.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(16)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_plan_is_demoted_others_still_answer_and_its_threads_end_with_it() {
    let f = Fixture::new(Some(
        "memory_per_query_mb = 256\ntimeout_seconds = 3\nconcurrent_per_project = 1\nconcurrent_overall = 4\nqueue_wait_ms = 300\nmax_result_rows = 1000\ndemote_after_ms = 200\n",
    ))
    .await;
    // Both projects' dummy catalogs are built before the clock starts: on a loaded machine the
    // first build can take longer than the watch below waits.
    for (user, project) in [("alice", PROJECT), ("carol", OTHER)] {
        let warm = f
            .query_as(
                user,
                project,
                Mode::Dummy,
                "SELECT count(*) AS n FROM ndb.receipts",
            )
            .await;
        assert_eq!(warm.status, Status::Ok, "{}", warm.message);
    }
    assert!(f.visiting.running_plans().is_empty());
    let runaway = f.query_as("alice", PROJECT, Mode::Dummy, RUNAWAY);
    let watch = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let running = f.visiting.running_plans();
        let nices: Vec<Option<i32>> = running
            .iter()
            .filter(|p| p.scope == PROJECT)
            .flat_map(|p| p.threads.iter().map(|t| nice_of(*t)))
            .collect();
        // While the runaway runs, another project's query answers.
        let other = f
            .query_as(
                "carol",
                OTHER,
                Mode::Dummy,
                "SELECT count(*) AS n FROM ndb.receipts",
            )
            .await;
        (running, nices, other)
    };
    let (o, (running, nices, other)) = tokio::join!(runaway, watch);
    assert!(o.message.contains("cancelled"), "{}", o.message);
    assert_eq!(other.status, Status::Ok, "{}", other.message);
    let plan = running
        .iter()
        .find(|p| p.scope == PROJECT)
        .expect("the runaway is listed while it runs");
    assert!(plan.demoted, "demoted after 200 ms");
    assert!(!plan.threads.is_empty());
    assert!(
        nices.iter().flatten().all(|n| *n == DEMOTED_NICE) && nices.iter().any(Option::is_some),
        "every thread of the runaway runs at nice {DEMOTED_NICE}: {nices:?}"
    );
    // Another project's plan, which never ran long, was never demoted.
    assert!(
        running
            .iter()
            .filter(|p| p.scope != PROJECT)
            .all(|p| !p.demoted)
    );
    // Stopped at its time limit, the runaway's threads end: none is left holding a core.
    let deadline = Instant::now() + Duration::from_secs(10);
    while plan.threads.iter().any(|t| nice_of(*t).is_some()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alive: Vec<&i32> = plan
        .threads
        .iter()
        .filter(|t| nice_of(**t).is_some())
        .collect();
    assert!(
        alive.is_empty(),
        "threads of the cancelled plan still alive: {alive:?}"
    );
    assert!(f.visiting.running_plans().is_empty());
}
