//! `niji-bench load`: many researchers at once, over HTTP and Flight SQL on loopback, against
//! `niji serve` on a seeded store; and fairness: another project's plain count while one
//! project's runaway query runs out its time limit.
//!
//! Prints the answers by kind (answered, busy, errors) per protocol, p50 and p99 latency,
//! the process's peak memory beside the configured pools, whether every query was audited
//! once, and the count's median time alone and beside the runaway.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use niji_governance::{Member, MemberRole, UserRole};
use tonic::transport::{Channel, Endpoint};

use crate::review::percentile;

const SHELL: &str = "custodian:bench";

/// Researchers per project.
const TEAM: usize = 5;

/// The query another project asks while the runaway runs.
const COUNT: &str = "SELECT count(*) AS receipts FROM ndb.receipts";

/// A cross join nothing bounds but the time limit.
const RUNAWAY: &str =
    "SELECT max(a.points + b.days) AS m FROM ndb.receipts a CROSS JOIN ndb.receipts b";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    Http,
    Flight,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Answer {
    /// A result, held or shown.
    Answered,
    /// The documented busy answer (HTTP 429, Flight RESOURCE_EXHAUSTED).
    Busy,
    Error,
}

#[derive(Clone)]
struct Sample {
    via: Via,
    answer: Answer,
    ms: f64,
    /// What an error said.
    error: Option<String>,
}

pub struct LoadArgs {
    pub persons: u64,
    pub researchers: usize,
    pub seconds: u64,
    pub think_ms: u64,
    pub runaway_seconds: u64,
}

pub fn run(
    ctx: &crate::Context,
    env: &crate::EnvArgs,
    args: &LoadArgs,
    work: &std::path::Path,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let _ = std::fs::remove_dir_all(work);
    let repo = ctx
        .catalog
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    // The configured limits, but a time limit the runaway reaches within the run.
    let limits: String = std::fs::read_to_string(&env.limits)
        .with_context(|| format!("reading {}", env.limits.display()))?
        .lines()
        .map(|l| {
            if l.starts_with("timeout_seconds") {
                format!("timeout_seconds = {}", args.runaway_seconds)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (running, visiting, tokens) = rt.block_on(async {
        eprintln!("seeding a store of {} persons…", args.persons);
        let seeded = niji_testkit::seed(
            work,
            &repo,
            args.persons,
            niji_testkit::Overrides {
                limits: Some(&limits),
                ..Default::default()
            },
        )
        .await?;
        let p = seeded.visiting.platform();
        let mut tokens = Vec::new();
        for i in 0..args.researchers {
            let name = format!("r{i:02}");
            tokens.push((
                name.clone(),
                p.add_user(SHELL, &name, UserRole::Researcher).await?,
            ));
        }
        let example = niji_testkit::example_spec(&repo)?;
        for (team, members) in tokens.chunks(TEAM).enumerate() {
            let mut spec = example.clone();
            spec.id = format!("load-{team}");
            spec.members = members
                .iter()
                .enumerate()
                .map(|(k, (user, _))| Member {
                    user: user.clone(),
                    role: if k == 0 {
                        MemberRole::Lead
                    } else {
                        MemberRole::Researcher
                    },
                })
                .collect();
            p.create_project(SHELL, &spec, seeded.visiting.catalog())
                .await?;
        }
        let loopback: SocketAddr = "127.0.0.1:0".parse()?;
        let running = niji_server::serve(seeded.visiting.clone(), loopback, loopback).await?;
        Ok::<_, anyhow::Error>((running, seeded.visiting, tokens))
    })?;
    let limits = visiting.limits().clone();
    let project_of = |i: usize| format!("load-{}", i / TEAM);
    let http = running.http;
    let sessions: Vec<String> = tokens
        .iter()
        .map(|(user, token)| http_session(http, user, token))
        .collect::<anyhow::Result<_>>()?;
    // Every query asked, for the audit's count.
    let mut samples: Vec<Sample> = Vec::new();
    // Every project's views built once, as a running server would have them.
    for team in 0..tokens.len().div_ceil(TEAM) {
        let s = http_query(
            http,
            &sessions[team * TEAM],
            &project_of(team * TEAM),
            "real",
            COUNT,
        )?;
        anyhow::ensure!(s.answer == Answer::Answered, "warming load-{team} failed");
        samples.push(s);
    }

    // Fairness: researcher 5's project asks a plain count and an aggregate alone, then beside
    // researcher 0's runaway.
    anyhow::ensure!(
        tokens.len() > TEAM,
        "fairness needs two projects: --researchers > {TEAM}"
    );
    let (asker, asked) = (&sessions[TEAM], project_of(TEAM));
    let aggregate = crate::visiting::SUITE[1].1;
    let median_of = |sql: &str, samples: &mut Vec<Sample>| -> anyhow::Result<f64> {
        let mut ms = Vec::new();
        for _ in 0..9 {
            let s = http_query(http, asker, &asked, "real", sql)?;
            anyhow::ensure!(s.answer == Answer::Answered, "{sql} was not answered");
            ms.push(s.ms);
            samples.push(s);
        }
        ms.sort_by(f64::total_cmp);
        Ok(percentile(&ms, 0.5))
    };
    let alone = (
        median_of(COUNT, &mut samples)?,
        median_of(aggregate, &mut samples)?,
    );
    let runaway_session = sessions[0].clone();
    let runaway_project = project_of(0);
    let runaway = std::thread::spawn(move || {
        http_query(http, &runaway_session, &runaway_project, "real", RUNAWAY)
    });
    // Past the demotion, as a runaway is for most of its life.
    std::thread::sleep(Duration::from_millis(limits.demote_after_ms + 500));
    let beside = (
        median_of(COUNT, &mut samples)?,
        median_of(aggregate, &mut samples)?,
    );
    let runaway = runaway
        .join()
        .map_err(|_| anyhow::anyhow!("the runaway's client panicked"))??;
    samples.push(runaway.clone());

    // Load: every researcher asks the suite's queries in turn, real and dummy, thinking a
    // while between them; even-numbered ones over HTTP, odd-numbered ones over Flight SQL.
    crate::peak::reset()?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let flight = running.flight;
    let think = args.think_ms;
    let mut http_clients = Vec::new();
    let mut flight_clients = Vec::new();
    for (i, (user, token)) in tokens.iter().enumerate() {
        let project = project_of(i);
        if i % 2 == 0 {
            let session = sessions[i].clone();
            http_clients.push(std::thread::spawn(move || {
                researcher(i, think, deadline, |sql, mode| {
                    http_query(http, &session, &project, mode, sql)
                })
            }));
        } else {
            let (user, token) = (user.clone(), token.clone());
            flight_clients.push(rt.spawn(async move {
                let mut client = flight_client(flight, &user, &token, &project).await?;
                let mut out = Vec::new();
                let mut turn = Turns::new(i);
                while Instant::now() < deadline {
                    let (sql, mode) = turn.next();
                    out.push(flight_query(&mut client, mode, sql).await);
                    tokio::time::sleep(turn.think(think)).await;
                }
                Ok::<_, anyhow::Error>(out)
            }));
        }
    }
    let mut load: Vec<Sample> = Vec::new();
    for c in http_clients {
        load.extend(
            c.join()
                .map_err(|_| anyhow::anyhow!("an HTTP client panicked"))??,
        );
    }
    for c in flight_clients {
        load.extend(rt.block_on(c)??);
    }
    let peak = crate::peak::megabytes()?;
    samples.extend(load.iter().cloned());

    let audited = rt.block_on(async {
        let audit = visiting.platform().audit();
        let mut n = 0;
        for (user, _) in &tokens {
            n += audit.count_since(user, "query", "").await?;
        }
        let intact = audit.verify().await?.is_intact();
        Ok::<_, anyhow::Error>((n, intact))
    })?;
    rt.block_on(running.shutdown());

    println!(
        "load: {} researchers ({} projects of {TEAM}) for {} s, think {} ms ± 100%, store of {} persons; limits: {} at once ({} per project), {} MiB per query, queue wait {} ms",
        args.researchers,
        args.researchers.div_ceil(TEAM),
        args.seconds,
        args.think_ms,
        args.persons,
        limits.concurrent_overall,
        limits.concurrent_per_project,
        limits.memory_per_query_mb,
        limits.queue_wait_ms
    );
    println!(
        "{:<8} {:>9} {:>9} {:>7} {:>7} {:>10} {:>10}",
        "via", "queries", "answered", "busy", "errors", "p50 ms", "p99 ms"
    );
    for via in [Via::Http, Via::Flight] {
        let of: Vec<&Sample> = load.iter().filter(|s| s.via == via).collect();
        let mut ms: Vec<f64> = of
            .iter()
            .filter(|s| s.answer == Answer::Answered)
            .map(|s| s.ms)
            .collect();
        ms.sort_by(f64::total_cmp);
        let n = |a: Answer| of.iter().filter(|s| s.answer == a).count();
        let (p50, p99) = if ms.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (percentile(&ms, 0.5), percentile(&ms, 0.99))
        };
        println!(
            "{:<8} {:>9} {:>9} {:>7} {:>7} {p50:>10.1} {p99:>10.1}",
            format!("{via:?}"),
            of.len(),
            n(Answer::Answered),
            n(Answer::Busy),
            n(Answer::Error)
        );
    }
    let pools = limits.concurrent_overall * limits.memory_per_query_mb;
    println!(
        "peak resident memory during the load {peak:.0} MiB (the query pools allow {pools} MiB: {} at once × {} MiB)",
        limits.concurrent_overall, limits.memory_per_query_mb
    );
    println!(
        "audited: {} query entries for {} queries asked ({}); chain intact: {}",
        audited.0,
        samples.len(),
        if audited.0 as usize == samples.len() {
            "each once"
        } else {
            "MISMATCH"
        },
        audited.1
    );
    println!(
        "fairness, another project's queries beside a runaway cross join (median of 9; goal at most 2x):"
    );
    for (name, alone, beside) in [
        ("plain count", alone.0, beside.0),
        (crate::visiting::SUITE[1].0, alone.1, beside.1),
    ] {
        println!(
            "  {name:<36} {alone:>8.1} ms alone {beside:>8.1} ms beside ({:.2}x)",
            beside / alone
        );
    }
    println!(
        "  the runaway ended after {:.1} s: {}",
        runaway.ms / 1000.0,
        runaway.error.as_deref().unwrap_or("an answer")
    );
    for e in load.iter().filter_map(|s| s.error.as_deref()).take(3) {
        println!("an error: {e}");
    }
    let _ = std::fs::remove_dir_all(work);
    Ok(())
}

/// Which query a researcher asks next and how long they think after it.
struct Turns {
    at: usize,
    rng: u64,
}

impl Turns {
    fn new(researcher: usize) -> Self {
        Self {
            at: researcher,
            rng: 0x9e37_79b9_7f4a_7c15 ^ researcher as u64,
        }
    }

    /// The next of the suite's queries; every third on dummy data.
    fn next(&mut self) -> (&'static str, &'static str) {
        self.at += 1;
        let suite = crate::visiting::SUITE;
        let mode = if self.at.is_multiple_of(3) {
            "dummy"
        } else {
            "real"
        };
        (suite[self.at % suite.len()].1, mode)
    }

    /// Between none and twice `think_ms`.
    fn think(&mut self, think_ms: u64) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        Duration::from_millis(self.rng % (2 * think_ms + 1))
    }
}

/// One researcher over a blocking client until `deadline`.
fn researcher(
    i: usize,
    think_ms: u64,
    deadline: Instant,
    mut ask: impl FnMut(&str, &str) -> anyhow::Result<Sample>,
) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    let mut turn = Turns::new(i);
    while Instant::now() < deadline {
        let (sql, mode) = turn.next();
        out.push(ask(sql, mode)?);
        std::thread::sleep(turn.think(think_ms));
    }
    Ok(out)
}

fn http_session(addr: SocketAddr, user: &str, token: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({"user": user, "token": token}).to_string();
    let r = niji_testkit::http::request(
        addr,
        "POST",
        "/api/v1/signin",
        &[("Content-Type", "application/json")],
        &body,
    )?;
    anyhow::ensure!(r.status == 200, "{user} did not sign in ({})", r.status);
    let v: serde_json::Value = serde_json::from_str(&r.body)?;
    Ok(v["session"].as_str().context("no session")?.to_string())
}

fn http_query(
    addr: SocketAddr,
    session: &str,
    project: &str,
    mode: &str,
    sql: &str,
) -> anyhow::Result<Sample> {
    let body = serde_json::json!({"project": project, "mode": mode, "sql": sql}).to_string();
    let bearer = format!("Bearer {session}");
    let started = Instant::now();
    let r = niji_testkit::http::request(
        addr,
        "POST",
        "/api/v1/query",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer),
        ],
        &body,
    )?;
    let answer = match r.status {
        200 => Answer::Answered,
        429 => Answer::Busy,
        _ => Answer::Error,
    };
    Ok(Sample {
        via: Via::Http,
        answer,
        ms: started.elapsed().as_secs_f64() * 1000.0,
        error: (answer != Answer::Answered).then(|| format!("HTTP {}: {}", r.status, r.body)),
    })
}

async fn flight_client(
    addr: SocketAddr,
    user: &str,
    token: &str,
    project: &str,
) -> anyhow::Result<FlightSqlServiceClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake(user, token).await?;
    client.set_header("x-niji-project", project);
    Ok(client)
}

async fn flight_query(
    client: &mut FlightSqlServiceClient<Channel>,
    mode: &str,
    sql: &str,
) -> Sample {
    client.set_header("x-niji-mode", mode);
    let started = Instant::now();
    let result: Result<(), arrow_flight::error::FlightError> = async {
        let info = client.execute(sql.to_string(), None).await?;
        // A held result has no endpoint; a dummy one is fetched.
        for ticket in info.endpoint.into_iter().filter_map(|e| e.ticket) {
            let _batches: Vec<_> = client.do_get(ticket).await?.try_collect().await?;
        }
        Ok(())
    }
    .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (answer, error) = match result {
        Ok(()) => (Answer::Answered, None),
        Err(e) if e.to_string().contains("busy") => (Answer::Busy, Some(e.to_string())),
        Err(e) => (Answer::Error, Some(e.to_string())),
    };
    Sample {
        via: Via::Flight,
        answer,
        ms,
        error,
    }
}
