//! A Ballista cluster of niji processes (`niji ballista scheduler`, two `niji ballista
//! executor`s) with an executor killed (`kill -9`) in the middle of a query: the query gives
//! an error or the right answer, never a wrong one, and the cluster answers rightly after.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use niji_ballista::BallistaEngine;
use niji_sandbox::{Mode, QueryOutcome, QueryRequest, Scope, Status, Visiting};

use crate::catalog_dir;
use crate::faults::free_port;

/// A process of the cluster, killed with the test.
struct Process(Child);

impl Process {
    fn start(args: &[&str]) -> Process {
        Process(
            Command::new(env!("CARGO_BIN_EXE_niji"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("a niji process"),
        )
    }

    fn kill_9(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.0.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill -9");
        self.0.wait().expect("reaped");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The rows of an answer, one text line each, in order.
fn rows(o: &QueryOutcome) -> Vec<String> {
    niji_testkit::text_rows(&o.batches)
        .into_iter()
        .map(|row| row.join(" | "))
        .collect()
}

/// A self-join of every receipt with every receipt of the same sex and setting: long enough to
/// be killed in, and one answer only.
const HEAVY: &str = "SELECT a.sex, count(*) AS pairs, sum(b.days) AS days FROM ndb.receipts a JOIN ndb.receipts b ON a.sex = b.sex AND a.setting = b.setting GROUP BY a.sex ORDER BY a.sex";

/// The fault tests' limits, with time for a cluster that shares the machine with other tests.
const LIMITS: &str = "memory_per_query_mb = 512\ntimeout_seconds = 40\nconcurrent_per_project = 2\nconcurrent_overall = 4\nqueue_wait_ms = 2000\nmax_result_rows = 100000\n";

#[test]
fn an_executor_killed_mid_query_gives_an_error_or_the_right_answer_never_a_wrong_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root: &Path = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let seeded = rt
        .block_on(niji_testkit::seed(
            root,
            &catalog_dir().join(".."),
            800,
            niji_testkit::Overrides {
                limits: Some(LIMITS),
                ..Default::default()
            },
        ))
        .expect("seeded");

    let scheduler = free_port().to_string();
    let _scheduler = Process::start(&[
        "ballista",
        "scheduler",
        "--bind",
        &scheduler,
        "--executor-timeout-s",
        &niji_ballista::MIN_EXECUTOR_TIMEOUT_S.to_string(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&scheduler).is_err() {
        assert!(Instant::now() < deadline, "the scheduler did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let executor = |_: usize| {
        Process::start(&[
            "ballista",
            "executor",
            "--scheduler",
            &scheduler,
            "--cores",
            "1",
            "--memory-mb",
            "512",
        ])
    };
    let mut executors: Vec<Process> = (0..2).map(executor).collect();

    let engine = BallistaEngine::remote(&format!("ballista://{scheduler}")).expect("engine");
    let cluster = rt
        .block_on(Visiting::open(
            seeded.settings.clone(),
            Arc::new(engine),
            niji_testkit::dummy_store(),
        ))
        .expect("the Visiting environment on the cluster");
    let request = QueryRequest {
        user: "alice".into(),
        scope: Scope::project(niji_testkit::PROJECT),
        mode: Mode::Dummy,
        sql: HEAVY.into(),
        via: "test",
    };
    let expected = rt.block_on(seeded.visiting.query(&request));
    assert_eq!(expected.status, Status::Ok, "{}", expected.message);
    let right = rows(&expected);
    assert_eq!(right.len(), 2, "{right:?}");

    // The cluster gives the right answer with both executors, in long enough to be killed in.
    let started = Instant::now();
    let whole = rt.block_on(cluster.query(&request));
    let took = started.elapsed();
    assert_eq!(whole.status, Status::Ok, "{}", whole.message);
    assert_eq!(rows(&whole), right);
    assert!(
        took > Duration::from_millis(500),
        "the query took {took:?}: too short to kill an executor in"
    );

    // An executor killed while the query runs.
    let cluster = Arc::new(cluster);
    let running = {
        let (cluster, request) = (cluster.clone(), request.clone());
        rt.spawn(async move { cluster.query(&request).await })
    };
    std::thread::sleep(took / 3);
    executors[0].kill_9();
    let outcome = rt.block_on(running).expect("the query's task");
    match outcome.status {
        Status::Ok => assert_eq!(rows(&outcome), right, "a wrong answer"),
        Status::Error => assert!(!outcome.message.is_empty()),
        other => panic!("{other:?}: {}", outcome.message),
    }
    eprintln!(
        "with an executor killed after {:?} of a {took:?} query: {:?} {}",
        took / 3,
        outcome.status,
        outcome.message
    );

    // The survivor answers rightly once the scheduler takes the other as lost.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let after = rt.block_on(cluster.query(&request));
        if after.status == Status::Ok {
            assert_eq!(rows(&after), right, "a wrong answer after the loss");
            break;
        }
        assert_eq!(after.status, Status::Error, "{}", after.message);
        assert!(
            Instant::now() < deadline,
            "no answer after the loss: {}",
            after.message
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}
