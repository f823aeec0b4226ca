//! Application review at platform scale, on SQLite and PostgreSQL side by side: 10,000
//! applications (assignments, votes, decisions, notifications) and 100,000 audit entries,
//! then the three reads users wait on, through the platform service as the API calls it: the
//! chair's review queue, an application's page, and an applicant's list. Prints p50, p95 and
//! p99 per backend. PostgreSQL is a server of its own started for the run (niji-testdb).
//!
//! The rows are written in bulk with SQL (the audit entries carry placeholder hashes): what is
//! measured is reading at this size, not writing it.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use niji_audit::DatabaseUrl;
use niji_catalog::Catalog;
use niji_governance::{ApplicationForm, Platform, UserRole};
use niji_pseudo::CustodianKey;
use niji_testdb::{Backend, TestDb};

const APPLICANTS: usize = 1_000;
const MEMBERS: usize = 20;
/// The chair who signs (a user name that is no role name: casbin keeps the two apart).
pub(crate) const CHAIR: &str = "frank";

/// Which state the `i`th application is in: about a third waits on the committee.
fn state_of(i: usize) -> &'static str {
    match i % 10 {
        0 | 1 => "submitted",
        2 | 3 => "under_review",
        4 => "approved",
        5 => "revision_requested",
        6 => "rejected",
        7 => "withdrawn",
        _ => "active",
    }
}

struct Figures {
    backend: &'static str,
    /// (name, p50, p95, p99) in milliseconds.
    reads: Vec<(&'static str, f64, f64, f64)>,
    seeded_s: f64,
}

/// The `p` quantile of sorted samples (nearest rank).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) async fn seed(
    platform: &Platform,
    applications: usize,
    audit_entries: usize,
    form: &ApplicationForm,
) -> anyhow::Result<()> {
    let shell = "custodian:bench";
    platform.add_organisation(shell, "org-0", "org 0").await?;
    platform.add_user(shell, CHAIR, UserRole::Chair).await?;
    let db = platform.db().database().clone();
    let pool = db.pool();
    let now = niji_audit::now_rfc3339();
    let mut tx = pool.begin().await?;
    for i in 0..APPLICANTS.max(MEMBERS) {
        for (name, role) in [
            (format!("r{i}"), "researcher"),
            (format!("m{i}"), "committee"),
        ] {
            if role == "committee" && i >= MEMBERS {
                continue;
            }
            sqlx::query("INSERT INTO users (name, role, token_hash, created_at, organisation) VALUES ($1, $2, $3, $4, 'org-0')")
                .bind(&name)
                .bind(role)
                .bind(format!("{name}-digest"))
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        }
    }
    let form_json = serde_json::to_string(form)?;
    for i in 0..applications {
        let id = format!("A{:06}", i + 1);
        let state = state_of(i);
        let due = format!("2027-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
        sqlx::query("INSERT INTO applications (id, number, kind, applicant, organisation, title, state, form, version, created_at, updated_at, first_submitted_at, submitted_at, due_on) VALUES ($1, $2, 'new', $3, 'org-0', $4, $5, $6, 1, $7, $7, $7, $7, $8)")
            .bind(&id)
            .bind(i as i64 + 1)
            .bind(format!("r{}", i % APPLICANTS))
            .bind(format!("{} #{i}", form.title))
            .bind(state)
            .bind(&form_json)
            .bind(&now)
            .bind(&due)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO application_versions (application, version, form, submitted_at) VALUES ($1, 1, $2, $3)")
            .bind(&id)
            .bind(&form_json)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        for k in 0..3 {
            let reviewer = format!("m{}", (i + k) % MEMBERS);
            sqlx::query("INSERT INTO review_assignments (application, reviewer, databases, assigned_by, assigned_at) VALUES ($1, $2, 'ndb', $4, $3)")
                .bind(&id)
                .bind(&reviewer)
                .bind(&now)
                .bind(CHAIR)
                .execute(&mut *tx)
                .await?;
            if k < 2 {
                sqlx::query("INSERT INTO review_votes (application, version, reviewer, vote, comments, voted_at) VALUES ($1, 1, $2, 'approve', '{\"data\":\"ok\"}', $3)")
                    .bind(&id)
                    .bind(&reviewer)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("INSERT INTO notifications (id, recipient, application, kind, message, created_at) VALUES ($1, $2, $3, 'submitted', 'submitted', $4)")
            .bind(i as i64 + 1)
            .bind(format!("r{}", i % APPLICANTS))
            .bind(&id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let mut tx = pool.begin().await?;
    let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log")
        .fetch_one(&mut *tx)
        .await?;
    for n in 0..audit_entries as i64 {
        sqlx::query("INSERT INTO audit_log (seq, at, actor, action, detail, prev_hash, hash, mac) VALUES ($1, $2, $3, 'query', $4, 'p', 'h', 'm')")
            .bind(first + n)
            .bind(&now)
            .bind(format!("r{}", n as usize % APPLICANTS))
            .bind(format!("{{\"query_id\":\"{n:016x}\",\"mode\":\"real\"}}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn measure(
    backend: Backend,
    applications: usize,
    audit_entries: usize,
    samples: usize,
    ctx: &crate::Context,
    env: &crate::EnvArgs,
) -> anyhow::Result<Figures> {
    let db = TestDb::new(backend).await;
    let url = DatabaseUrl::parse(db.url())?;
    let key = CustodianKey::from_bytes([5; 32]);
    let platform =
        Platform::open(&url, &db.dir().join("audit.anchor"), &key, &env.policies).await?;
    let catalog = Catalog::load(&ctx.catalog)?;
    let form_path = env
        .limits
        .parent()
        .unwrap_or(Path::new("."))
        .join("examples/application.toml");
    let form = ApplicationForm::from_toml(
        &std::fs::read_to_string(&form_path).context("the example application")?,
    )?;
    let started = Instant::now();
    seed(&platform, applications, audit_entries, &form).await?;
    let seeded_s = started.elapsed().as_secs_f64();
    let mut reads = Vec::new();
    for name in [
        "review queue (chair, 100)",
        "application page",
        "applicant's list",
    ] {
        let mut times = Vec::with_capacity(samples);
        for s in 0..samples {
            // Spread over the data: a different application and applicant each time.
            let i = (s * 7_919) % applications;
            let t = Instant::now();
            match name {
                "review queue (chair, 100)" => {
                    std::hint::black_box(platform.review_queue(CHAIR, 100).await?);
                }
                "application page" => {
                    let id = format!("A{:06}", i + 1);
                    std::hint::black_box(platform.application_page(CHAIR, &id, &catalog).await?);
                }
                _ => {
                    let applicant = format!("r{}", i % APPLICANTS);
                    std::hint::black_box(platform.my_applications(&applicant, 100).await?);
                }
            }
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        reads.push((
            name,
            percentile(&times, 0.50),
            percentile(&times, 0.95),
            percentile(&times, 0.99),
        ));
    }
    Ok(Figures {
        backend: match backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        },
        reads,
        seeded_s,
    })
}

pub fn run(
    ctx: &crate::Context,
    env: &crate::EnvArgs,
    applications: usize,
    audit_entries: usize,
    samples: usize,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let figures = rt.block_on(async {
        let mut all = Vec::new();
        for backend in [Backend::Sqlite, Backend::Postgres] {
            eprintln!("seeding {applications} applications and {audit_entries} audit entries on {backend:?}…");
            all.push(measure(backend, applications, audit_entries, samples, ctx, env).await?);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    println!(
        "review reads at {applications} applications, {audit_entries} audit entries; {samples} samples each; ms"
    );
    print!("{:<28}", "read");
    for f in &figures {
        print!(
            " {:>10} {:>10} {:>10}",
            format!("{} p50", f.backend),
            "p95",
            "p99"
        );
    }
    println!();
    for (i, (name, ..)) in figures[0].reads.iter().enumerate() {
        print!("{name:<28}");
        for f in &figures {
            let (_, p50, p95, p99) = f.reads[i];
            print!(" {p50:>10.2} {p95:>10.2} {p99:>10.2}");
        }
        println!();
    }
    for f in &figures {
        println!("{}: seeded in {:.1} s", f.backend, f.seeded_s);
    }
    let worst = figures
        .iter()
        .flat_map(|f| f.reads.iter().map(|r| r.2))
        .fold(0.0, f64::max);
    println!(
        "p95 under 50 ms on both: {}",
        if worst < 50.0 { "yes" } else { "NO" }
    );
    Ok(())
}
