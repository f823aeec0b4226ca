//! Standard datasets at national scale: a synthetic 難病DB of `patients` certified patients
//! (five fiscal years of forms), ingested; each dataset built once through the chokepoint
//! (checks, ledger, audit) beside DuckDB running the same aggregation, unchecked, over the same
//! Parquet; then an analyst's request, one committee member's sign-off and the download, timed
//! from request to file; then 100 feasibility counts through the chokepoint beside DuckDB's
//! plain count of the same. Prints peak memory. The work directory is made anew each run.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use niji_governance::{DatasetRequestForm, UserRole};
use niji_sandbox::{CountRequest, DatasetFormat, LocalEngine, Settings, Visiting};

use crate::EnvArgs;

const SHELL: &str = "custodian:bench";

/// (p50, p99) of `samples`.
fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

/// Counts an analyst might ask, each with the same count in SQL over the stored tables for
/// DuckDB: diseases from common to rare, years, prefectures, age ranges and severities.
fn feasibility_counts() -> Vec<(CountRequest, String)> {
    let mut out = Vec::new();
    for i in 0..100u16 {
        let disease =
            [6, 97, 49, 96, 18, 84, 13, 11, 63, 93][usize::from(i % 10)] + (i / 10) * 31 % 300;
        let year = 2019 + i % 5;
        let mut request = CountRequest {
            disease_no: disease,
            fiscal_year: year,
            severity_from: (i % 3 == 0).then_some(3),
            severity_to: None,
            age_from: (i % 4 == 1).then_some(40),
            age_to: (i % 4 == 1).then_some(64),
            prefecture: None,
            new_only: i % 7 == 0,
        };
        let mut conditions = vec![
            format!("s.disease_no = {disease}"),
            format!("s.fiscal_year = {year}"),
        ];
        if request.severity_from.is_some() {
            conditions.push("s.severity_stage >= 3".into());
        }
        if request.age_from.is_some() {
            let age = "(s.fiscal_year - CAST(date_part('year', s.birth_date) AS INT))";
            conditions.push(format!("{age} >= 40 AND {age} <= 64"));
        }
        if request.new_only {
            conditions.push("s.application_kind = 1".into());
        }
        let mut join = "";
        if i % 5 == 2 {
            let prefecture = format!("{:02}", 1 + i % 47);
            conditions.push(format!("m.prefecture = '{prefecture}'"));
            request.prefecture = Some(prefecture);
            join = " JOIN reference.municipalities m ON s.municipality = m.municipality";
        }
        let sql = format!(
            "SELECT count(DISTINCT s.person_idx) AS patients FROM nanbyo.surveys s{join} WHERE {}",
            conditions.join(" AND ")
        );
        out.push((request, sql));
    }
    out
}

/// A synthetic 難病DB of `patients` certified patients (FY2019–2023), ingested under `work`
/// (made anew), with the published policies copied to `work/policies` for a benchmark to adjust.
pub(crate) struct Registry {
    pub(crate) data: std::path::PathBuf,
    pub(crate) key_file: std::path::PathBuf,
    pub(crate) policies: std::path::PathBuf,
    pub(crate) forms: u64,
    pub(crate) synth_s: f64,
    pub(crate) ingest_s: f64,
}

pub(crate) fn registry(
    ctx: &crate::Context,
    env: &EnvArgs,
    patients: u64,
    work: &Path,
) -> anyhow::Result<Registry> {
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
    let policies = work.join("policies");
    std::fs::create_dir_all(&policies)?;
    for entry in std::fs::read_dir(&env.policies)? {
        let entry = entry?;
        std::fs::copy(entry.path(), policies.join(entry.file_name()))?;
    }
    Ok(Registry {
        data,
        key_file,
        policies,
        forms: forms as u64,
        synth_s,
        ingest_s,
    })
}

impl Registry {
    /// The Visiting environment over it.
    pub(crate) async fn open(
        &self,
        ctx: &crate::Context,
        env: &EnvArgs,
    ) -> anyhow::Result<Arc<Visiting>> {
        let settings = Settings {
            data_dir: self.data.clone(),
            key_file: self.key_file.clone(),
            catalog_dir: ctx.catalog.clone(),
            policies_dir: self.policies.clone(),
            limits_file: env.limits.clone(),
            database: None,
        };
        Ok(Arc::new(
            Visiting::open(settings, Arc::new(LocalEngine), niji_testkit::dummy_store()).await?,
        ))
    }
}

pub fn run(
    ctx: &crate::Context,
    env: &EnvArgs,
    patients: u64,
    work: &Path,
    python: &Path,
    script: &Path,
) -> anyhow::Result<()> {
    let registry = registry(ctx, env, patients, work)?;
    let Registry {
        data,
        forms,
        synth_s,
        ingest_s,
        ..
    } = &registry;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The published policies, with quotas that let the benchmark ask its counts in a row.
    std::fs::write(
        registry.policies.join("feasibility.toml"),
        "rounding = 10\nper_minute = 100000\nper_week = 100000\nper_organisation_week = 100000\nlockout_after = 100000\nlockout_window_hours = 1\n",
    )?;
    rt.block_on(async {
        let v = registry.open(ctx, env).await?;
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
        // Feasibility counts: COUNTS of them, varied, each through the chokepoint.
        p.approve_dataset_organisation("cathy", "pharma-a").await?;
        let counts = feasibility_counts();
        let mut count_ms = Vec::new();
        let mut shown = std::collections::BTreeMap::<&str, usize>::new();
        for (i, (request, sql)) in counts.iter().enumerate() {
            let started = Instant::now();
            let answer = v.feasibility_count("paula", request).await?;
            count_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            let kind = match answer.patients.as_str() {
                "<10" => "<10",
                "withheld" => "withheld",
                _ => "shown",
            };
            *shown.entry(kind).or_default() += 1;
            queries.push(serde_json::json!({"name": format!("count-{i}"), "sql": sql}));
        }
        let duck =
            crate::visiting::duckdb_best(python, script, &data.join("store"), work, &queries, 3)?;
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
        let request = p.request_dataset("paula", &form, v.offered(dataset)).await?;
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
        let duck_ms: Vec<f64> = (0..counts.len())
            .filter_map(|i| duck[format!("count-{i}").as_str()].as_f64())
            .map(|s| s * 1000.0)
            .collect();
        let (niji_p, duck_p) = (percentiles(count_ms), percentiles(duck_ms));
        println!(
            "feasibility counts ({} asked: {shown:?}): niji p50 {:.0} ms, p99 {:.0} ms; DuckDB plain p50 {:.0} ms, p99 {:.0} ms",
            counts.len(),
            niji_p.0,
            niji_p.1,
            duck_p.0,
            duck_p.1
        );
        println!("peak memory {:.0} MiB", crate::peak::megabytes()?);
        Ok(())
    })
}
