//! Anonymised record-level extracts beside anjana (PyPI): a synthetic 難病DB of `patients`
//! certified patients is ingested; the extract `anonymised-patients` is built through the
//! chokepoint (end to end); the same query's rows, read plainly from the store, are anonymised
//! by niji's anonymiser alone (timed) and, prepared the same way (finest labels, the same
//! hierarchies, k and suppression limit), by anjana's k-anonymity. Both files are measured by
//! one evaluator (scripts/bench_anjana.py: pycanon's k, records and values suppressed, the
//! information lost), which also checks niji's own report.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use niji_anonymise::AnonymisationPolicy;
use niji_governance::UserRole;

use crate::EnvArgs;
use crate::datasets::{Registry, registry};

const EXTRACT: &str = "anonymised-patients";

fn write_csv(path: &Path, batch: &RecordBatch) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(batch.schema().fields().iter().map(|f| f.name().as_str()))?;
    let options = FormatOptions::default().with_null("");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    for row in 0..batch.num_rows() {
        w.write_record(formatters.iter().map(|f| f.value(row).to_string()))?;
    }
    w.flush()?;
    Ok(())
}

/// The definition's query over the stored table itself (no views, no checks): the rows the
/// chokepoint hands the anonymiser, for anonymisers to be timed on alone.
async fn plain_input(data: &Path, sql: &str) -> anyhow::Result<RecordBatch> {
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.sql("CREATE SCHEMA nanbyo").await?;
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE nanbyo.surveys STORED AS PARQUET LOCATION '{}/'",
        data.join("store/nanbyo/surveys").display()
    ))
    .await?;
    let df = ctx.sql(&crate::visiting::plain(sql)).await?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

pub fn run(
    ctx: &crate::Context,
    env: &EnvArgs,
    patients: u64,
    work: &Path,
    python: &Path,
    script: &Path,
) -> anyhow::Result<()> {
    let registry: Registry = registry(ctx, env, patients, work)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let v = registry.open(ctx, env).await?;
        v.platform()
            .add_user("custodian:bench", "cathy", UserRole::Custodian)
            .await?;
        println!(
            "niji-bench anonymise: {patients} certified patients, {} forms; synthesised in {:.1} s, ingested in {:.1} s",
            registry.forms, registry.synth_s, registry.ingest_s
        );
        let started = Instant::now();
        let built = v
            .build_dataset("cathy", EXTRACT)
            .await
            .map_err(|e| anyhow::anyhow!(e.public_message()))?;
        let build_s = started.elapsed().as_secs_f64();
        let report = v
            .extract_report(EXTRACT)
            .await?
            .context("the extract has no report")?;

        let definition = v
            .standard_datasets()
            .get(EXTRACT)
            .context("no definition")?
            .dataset
            .clone();
        let mut spec = definition
            .anonymisation
            .clone()
            .context("not an extract")?;
        // Read plainly, the person is the store's index, not a project pseudonym.
        spec.person = crate::visiting::plain(&spec.person);
        let spec = &spec;
        let input = plain_input(&registry.data, &definition.sql).await?;
        let policy = AnonymisationPolicy::load(&registry.policies.join("anonymisation.toml"))?;
        let started = Instant::now();
        let alone = niji_anonymise::anonymise(&input, spec, &policy)?;
        let alone_s = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            alone.report == report,
            "the same rows anonymised alone differ from the build's: {:?} vs {report:?}",
            alone.report
        );

        let prepared = niji_anonymise::prepare(&input, spec)?;
        let dir = work.join("anonymise");
        let hierarchy_dir = dir.join("hierarchies");
        std::fs::create_dir_all(&hierarchy_dir)?;
        write_csv(&dir.join("prepared.csv"), &prepared.batch)?;
        write_csv(&dir.join("niji.csv"), &alone.batch)?;
        let mut quasi = Vec::new();
        for h in &prepared.hierarchies {
            let mut w = csv::Writer::from_path(hierarchy_dir.join(format!("{}.csv", h.column)))?;
            w.write_record(&h.levels)?;
            for row in &h.rows {
                w.write_record(row)?;
            }
            w.flush()?;
            quasi.push(h.column.clone());
        }
        let peer = std::process::Command::new(python)
            .arg(script)
            .arg(dir.join("prepared.csv"))
            .arg(&hierarchy_dir)
            .arg(dir.join("niji.csv"))
            .arg(report.k.to_string())
            .arg(policy.max_suppressed_percent.to_string())
            .arg(quasi.join(","))
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        anyhow::ensure!(
            peer.status.success(),
            "anjana: {}",
            String::from_utf8_lossy(&peer.stderr)
        );
        let measured: serde_json::Value = serde_json::from_slice(&peer.stdout)?;
        let (niji, anjana) = (&measured["niji"], &measured["anjana"]);
        // The evaluator reads niji's file as it reads anjana's: it must find what niji reported.
        anyhow::ensure!(
            niji["k_reached"].as_u64() == Some(report.k_reached)
                && niji["records_out"].as_u64() == Some(report.records_out)
                && (niji["generalisation_loss"].as_f64().unwrap_or(f64::NAN)
                    - report.loss.generalisation)
                    .abs()
                    < 1e-5,
            "the evaluator disagrees with niji's report: {niji} vs {report:?}"
        );

        let levels: Vec<String> = report
            .levels
            .iter()
            .map(|l| format!("{} {}", l.column, l.level))
            .collect();
        println!(
            "extract: {} patients of FY2023, quasi-identifiers {}; k = {}, at most {} % suppressed; niji chose [{}] ({} of {} generalisations tried)",
            report.records_in,
            quasi.join(", "),
            report.k,
            policy.max_suppressed_percent,
            levels.join(", "),
            report.lattice_evaluated,
            report.lattice_nodes
        );
        println!(
            "{:<8} {:>9} {:>11} {:>12} {:>12} {:>9} {:>10} {:>16} {:>9} {:>9}",
            "tool", "k reached", "records out", "records left", "values *", "groups", "NCP loss", "discernibility", "C_avg", "time"
        );
        for (name, m, seconds) in [
            ("niji", niji, alone_s),
            ("anjana", anjana, anjana["seconds"].as_f64().unwrap_or(f64::NAN)),
        ] {
            let int = |key: &str| m[key].as_u64().map_or("-".to_string(), |n| n.to_string());
            let float = |key: &str| m[key].as_f64().unwrap_or(f64::NAN);
            println!(
                "{name:<8} {:>9} {:>11} {:>12} {:>12} {:>9} {:>10.4} {:>16} {:>9.2} {:>8.2}s",
                int("k_reached"),
                int("records_out"),
                int("records_suppressed"),
                int("values_suppressed"),
                int("groups"),
                float("generalisation_loss"),
                int("discernibility"),
                float("average_group_size"),
                seconds
            );
        }
        println!(
            "niji's build through the chokepoint (query, anonymisation, check, files): {build_s:.2} s; {} records, {} values suppressed, Parquet {} KiB",
            built.rows_released,
            built.cells_masked,
            std::fs::metadata(
                registry
                    .data
                    .join("standard")
                    .join(EXTRACT)
                    .join(format!("{}.parquet", built.version))
            )
            .map_or(0, |m| m.len())
                / 1024
        );
        Ok(())
    })
}
