//! Standard datasets at national scale: a synthetic 難病DB of `patients` certified patients
//! (five fiscal years of forms), ingested; each dataset built once through the chokepoint
//! (checks, ledger, audit) beside DuckDB running the same aggregation, unchecked, over the same
//! Parquet; then an analyst's request, one committee member's sign-off and the download, timed
//! from request to file. Prints peak memory. The work directory is made anew each run.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use niji_governance::{DatasetRequestForm, UserRole};
use niji_sandbox::{DatasetFormat, LocalEngine, Settings, Visiting};

use crate::EnvArgs;

const SHELL: &str = "custodian:bench";

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn run(
    ctx: &crate::Context,
    env: &EnvArgs,
    patients: u64,
    work: &Path,
    python: &Path,
    script: &Path,
) -> anyhow::Result<()> {
    if work.exists() {
        std::fs::remove_dir_all(work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let data = work.join("data");
    let key_file = work.join("keys/custodian.key");
    let key = niji_pseudo::CustodianKey::init(&key_file, &data)?;
    let catalog = ctx.catalog()?;
    let mut cfg = niji_synth::SynthConfig::new(patients, 7, work.join("synth"));
    cfg.nanbyo_registry = true;
    cfg.start_ym = 201904;
    cfg.months = 60;
    let started = Instant::now();
    let synth = niji_synth::generate(&cfg, &|_, _| {})?;
    let synth_s = started.elapsed().as_secs_f64();
    let forms = synth.tables.get("nanbyo.surveys").map_or(0, |t| t.rows);
    let started = Instant::now();
    let opts = niji_ingest::IngestOptions::new(cfg.out.join("raw"), data.clone());
    let ingested = niji_ingest::ingest(&catalog, &key, &opts, &|_| {})?;
    let ingest_s = started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&cfg.out)?;
    drop(ingested);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let settings = Settings {
            data_dir: data.clone(),
            key_file,
            catalog_dir: ctx.catalog.clone(),
            policies_dir: env.policies.clone(),
            limits_file: env.limits.clone(),
            database: None,
        };
        let v = Arc::new(
            Visiting::open(settings, Arc::new(LocalEngine), niji_testkit::dummy_store()).await?,
        );
        let p = v.platform();
        p.add_organisation(SHELL, "pharma-a", "Pharma A").await?;
        for (name, role) in [
            ("cathy", UserRole::Custodian),
            ("paula", UserRole::Analyst),
            ("dora", UserRole::Committee),
        ] {
            p.add_user(SHELL, name, role).await?;
        }
        p.set_organisation(SHELL, "paula", "pharma-a").await?;

        println!(
            "niji-bench datasets: {patients} certified patients, {forms} forms (FY2019–2023); synthesised in {synth_s:.1} s, ingested in {ingest_s:.1} s; {} cores",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let mut queries = Vec::new();
        let mut built = Vec::new();
        for (name, definition) in &v.standard_datasets().datasets {
            let started = Instant::now();
            match v.build_dataset("cathy", name).await {
                Ok(version) => {
                    let seconds = started.elapsed().as_secs_f64();
                    queries.push(serde_json::json!({"name": name, "sql": crate::visiting::plain(&definition.dataset.sql)}));
                    built.push((name.clone(), seconds, version));
                }
                Err(e) => println!("{name:<22} not built: {}", e.public_message()),
            }
        }
        let queries_file = work.join("queries.json");
        std::fs::write(&queries_file, serde_json::to_vec(&queries)?)?;
        let duck = std::process::Command::new(python)
            .arg(script)
            .arg(data.join("store"))
            .arg(&queries_file)
            .arg("3")
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        anyhow::ensure!(duck.status.success(), "duckdb: {}", String::from_utf8_lossy(&duck.stderr));
        let duck: serde_json::Value = serde_json::from_slice(&duck.stdout)?;
        println!(
            "{:<22} {:>10} {:>12} {:>9} {:>10} {:>12} {:>12}",
            "dataset", "niji build", "duckdb plain", "niji/duck", "rows", "cells masked", "parquet KiB"
        );
        for (name, seconds, version) in &built {
            let duck_s = duck[name.as_str()].as_f64().unwrap_or(f64::NAN);
            let parquet = std::fs::metadata(
                data.join("standard").join(name).join(format!("{}.parquet", version.version)),
            )
            .map_or(0, |m| m.len());
            println!(
                "{name:<22} {seconds:>9.2}s {duck_s:>11.2}s {:>8.1}× {:>10} {:>12} {:>12}",
                seconds / duck_s,
                version.rows_released,
                version.cells_masked,
                parquet / 1024
            );
        }

        // The fast track, timed from the request to the bytes in hand.
        let dataset = "natural-history";
        let form = DatasetRequestForm {
            dataset: dataset.into(),
            purpose: "Trial feasibility: patients and severity by age band and sex".into(),
            public_interest: "Earlier treatment for patients of rare diseases".into(),
            pledge: true,
        };
        let started = Instant::now();
        let request = p.request_dataset("paula", &form, true).await?;
        p.sign_off_dataset_request("dora", &request.id, true, "").await?;
        let delivered = v.deliver_dataset("paula", dataset, DatasetFormat::Csv).await?;
        let request_to_file = started.elapsed().as_secs_f64();
        let build = built
            .iter()
            .find(|(n, ..)| n == dataset)
            .map_or(0.0, |(_, s, _)| *s);
        println!(
            "request → sign-off → file ({dataset}, CSV {} KiB): {:.0} ms with the version built; {:.1} s were it built on the way (its build {build:.1} s)",
            delivered.bytes.len() / 1024,
            request_to_file * 1000.0,
            request_to_file + build
        );
        println!("peak memory {:.0} MiB", peak_rss_mib());
        Ok(())
    })
}
