//! The portal's pages at platform scale: the seeded environment with 10,000 applications and
//! 100,000 audit entries (the review benchmark's rows), served by `niji serve` on loopback,
//! each page asked over HTTP as its user would (session cookie) and timed end to end, beside
//! the API route that reads the same. Prints p50 and p95 per page.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use crate::review::percentile;
use niji_governance::{ApplicationForm, UserRole};

const PASSWORD: &str = "benchmark password 2026";

/// One request, as a browser (htmx for a `/f/` fragment) would make it; the status, the
/// `Set-Cookie` lines and the body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    form: &str,
) -> anyhow::Result<(u16, Vec<String>, String)> {
    let mut headers = Vec::new();
    if !form.is_empty() {
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    }
    if path.starts_with("/f/") {
        headers.push(("HX-Request", "true"));
    }
    if !cookie.is_empty() {
        headers.push(("Cookie", cookie));
    }
    let r = niji_testkit::http::request(addr, method, path, &headers, form)?;
    Ok((r.status, r.cookies, r.body))
}

fn hidden(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The portal session cookie of `user`.
fn sign_in(addr: SocketAddr, user: &str) -> anyhow::Result<String> {
    let (_, cookies, page) = request(addr, "GET", "/signin", "", "")?;
    let token = hidden(&page, "csrf").context("sign-in token")?;
    let form = format!(
        "user={user}&password={}&csrf={token}&next=/",
        PASSWORD.replace(' ', "+")
    );
    let (status, cookies, _) = request(addr, "POST", "/signin", &cookies.join("; "), &form)?;
    anyhow::ensure!(status == 303, "{user} did not sign in ({status})");
    cookies
        .into_iter()
        .find(|c| c.starts_with("niji_session="))
        .context("session cookie")
}

pub fn run(
    ctx: &crate::Context,
    env: &crate::EnvArgs,
    applications: usize,
    audit_entries: usize,
    samples: usize,
    work: &Path,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let _ = std::fs::remove_dir_all(work);
    let repo = ctx.catalog.parent().unwrap_or(Path::new(".")).to_path_buf();
    let running = rt.block_on(async {
        let seeded = niji_testkit::seed(work, &repo, 2_000, Default::default()).await?;
        let p = seeded.visiting.platform();
        let form_path = env
            .limits
            .parent()
            .unwrap_or(Path::new("."))
            .join("examples/application.toml");
        let form = ApplicationForm::from_toml(&std::fs::read_to_string(&form_path)?)?;
        eprintln!("seeding {applications} applications and {audit_entries} audit entries…");
        crate::review::seed(p, applications, audit_entries, &form).await?;
        let shell = "custodian:bench";
        p.add_user(shell, "kumi", UserRole::Custodian).await?;
        for user in [crate::review::CHAIR, "r1", "kumi", "alice"] {
            p.set_password(shell, user, PASSWORD).await?;
        }
        let loopback: SocketAddr = "127.0.0.1:0".parse()?;
        let running = niji_server::serve(seeded.visiting.clone(), loopback, loopback).await?;
        Ok::<_, anyhow::Error>(running)
    })?;
    let addr = running.http;
    let cookie = |u: &str| sign_in(addr, u);
    let (chair, r1, kumi, alice) = (
        cookie(crate::review::CHAIR)?,
        cookie("r1")?,
        cookie("kumi")?,
        cookie("alice")?,
    );
    let pages: Vec<(&str, String, String)> = vec![
        ("catalog (public)", String::new(), "/catalog".into()),
        (
            "catalog search (htmx)",
            String::new(),
            "/f/catalog?q=sex".into(),
        ),
        ("dashboard (public)", String::new(), "/dashboard".into()),
        ("review queue (chair)", chair.clone(), "/review".into()),
        (
            "application page (chair)",
            chair,
            "/applications/A000123".into(),
        ),
        ("applicant's list", r1, "/applications".into()),
        ("audit, newest 100", kumi.clone(), "/audit".into()),
        ("audit, one actor", kumi.clone(), "/audit?actor=r7".into()),
        (
            "audit, text search",
            kumi,
            "/audit?contains=00000000000001".into(),
        ),
        (
            "project console",
            alice.clone(),
            "/projects/copay-2022".into(),
        ),
        ("datasets", alice, "/datasets".into()),
    ];
    println!(
        "portal pages at {applications} applications, {audit_entries} audit entries; {samples} requests each over loopback HTTP; ms"
    );
    println!("{:<30} {:>8} {:>8} {:>8}", "page", "p50", "p95", "bytes");
    let mut worst: f64 = 0.0;
    for (name, cookie, path) in &pages {
        let mut times = Vec::with_capacity(samples);
        let mut bytes = 0;
        for _ in 0..samples {
            let t = Instant::now();
            let (status, _, body) = request(addr, "GET", path, cookie, "")?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(status == 200, "{name}: {status}");
            bytes = body.len();
        }
        times.sort_by(f64::total_cmp);
        let p95 = percentile(&times, 0.95);
        worst = worst.max(p95);
        println!(
            "{name:<30} {:>8.2} {p95:>8.2} {bytes:>8}",
            percentile(&times, 0.5)
        );
    }
    println!(
        "p95 under 200 ms on every page: {}",
        if worst < 200.0 { "yes" } else { "NO" }
    );
    rt.block_on(running.shutdown());
    let _ = std::fs::remove_dir_all(work);
    Ok(())
}
