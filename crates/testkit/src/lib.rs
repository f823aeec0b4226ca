//! A small working environment from nothing: a custodian key, a synthetic store ingested under
//! it, the researchers alice, bob and carol, the output checkers dora and erin (committee), the
//! example project (alice, bob) and a copy of it named `other-study` without linkage (carol).
//! Used by the tests of every layer from the sandbox up, and by the benchmarks; never by the
//! product binary (a dev-only crate).

pub mod http;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use niji_governance::{Member, MemberRole, ProjectSpec, UserRole};
use niji_pseudo::CustodianKey;

use niji_sandbox::{DummyStoreMaker, Engine, SandboxError, Settings, Visiting};

/// The analysis suite of the benchmarks and the engine comparisons: (name, SQL as a project
/// writes it, over the example project's tables). The plain form replaces `pid` by `person_idx`.
pub const SUITE: &[(&str, &str)] = &[
    (
        "monthly receipts and persons",
        "SELECT claim_ym, count(*) AS receipts, count(DISTINCT pid) AS persons FROM ndb.receipts GROUP BY claim_ym ORDER BY claim_ym",
    ),
    (
        "points by prefecture, sex, setting",
        "SELECT prefecture, sex, setting, sum(points) AS points, avg(days) AS days FROM ndb.receipts GROUP BY prefecture, sex, setting ORDER BY prefecture, sex, setting",
    ),
    (
        "copay 2022-10 before/after",
        "SELECT claim_ym >= 202210 AS after, copay_rate, income_class, avg(days) AS days, count(DISTINCT pid) AS persons FROM ndb.receipts WHERE setting = 1 GROUP BY claim_ym >= 202210, copay_rate, income_class ORDER BY 1, 2, 3",
    ),
    (
        "diabetes patients by month (join)",
        "SELECT r.claim_ym, count(DISTINCT r.pid) AS persons FROM ndb.receipts r JOIN ndb.diagnoses d ON d.receipt_key = r.record_key WHERE d.icd10 LIKE 'E11%' GROUP BY r.claim_ym ORDER BY r.claim_ym",
    ),
    (
        "receipts per person distribution",
        "SELECT CASE WHEN n < 5 THEN '1-4' WHEN n < 20 THEN '5-19' ELSE '20+' END AS band, count(*) AS persons FROM (SELECT pid, count(*) AS n FROM ndb.receipts GROUP BY pid) t GROUP BY 1 ORDER BY 1",
    ),
    (
        "top main diagnoses",
        "SELECT substr(icd10, 1, 3) AS code, count(*) AS n FROM ndb.diagnoses WHERE is_main GROUP BY substr(icd10, 1, 3) ORDER BY n DESC, code LIMIT 20",
    ),
];

pub const PROJECT: &str = "copay-2022";
pub const OTHER: &str = "other-study";

#[derive(Debug)]
pub struct Seeded {
    pub visiting: Arc<Visiting>,
    pub settings: Settings,
    /// API token of each user.
    pub tokens: BTreeMap<String, String>,
}

/// The example spec of the checkout at `repo`.
pub fn example_spec(repo: &Path) -> Result<ProjectSpec, SandboxError> {
    let path = repo.join("sandbox/examples/project.toml");
    let text = std::fs::read_to_string(&path)?;
    Ok(ProjectSpec::from_toml(&text)?)
}

/// Files of the checkout replaced by a test (TOML text).
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides<'a> {
    /// For `sandbox/limits.toml`.
    pub limits: Option<&'a str>,
    /// For `policies/disclosure.toml` (the other policies are copied as they are).
    pub disclosure: Option<&'a str>,
    /// For `policies/feasibility.toml`.
    pub feasibility: Option<&'a str>,
    /// A 難病DB delivery alone (every person a certified patient, fiscal years 2019–2023)
    /// instead of the five databases.
    pub nanbyo_registry: bool,
}

/// The synthetic delivery `seed` ingests for `persons` and `overrides` (seed 7), so that a test
/// can generate the raw extract again (ingest removes it).
pub fn synth_config(
    persons: u64,
    overrides: &Overrides<'_>,
    out: PathBuf,
) -> niji_synth::SynthConfig {
    let mut cfg = niji_synth::SynthConfig::new(persons, 7, out);
    if overrides.nanbyo_registry {
        cfg.nanbyo_registry = true;
        cfg.start_ym = 201904;
        cfg.months = 60;
    }
    cfg
}

/// Builds everything under `root` from the checkout at `repo`, with `overrides`.
pub async fn seed(
    root: &Path,
    repo: &Path,
    persons: u64,
    overrides: Overrides<'_>,
) -> Result<Seeded, SandboxError> {
    std::fs::create_dir_all(root)?;
    let limits_file: PathBuf = match overrides.limits {
        Some(text) => {
            let p = root.join("limits.toml");
            std::fs::write(&p, text)?;
            p
        }
        None => repo.join("sandbox/limits.toml"),
    };
    let replaced = [
        ("disclosure.toml", overrides.disclosure),
        ("feasibility.toml", overrides.feasibility),
    ];
    let policies_dir = if replaced.iter().any(|(_, text)| text.is_some()) {
        let dir = root.join("policies");
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(repo.join("policies"))? {
            let entry = entry?;
            std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
        }
        for (file, text) in replaced {
            if let Some(text) = text {
                std::fs::write(dir.join(file), text)?;
            }
        }
        dir
    } else {
        repo.join("policies")
    };
    let settings = Settings {
        data_dir: root.join("data"),
        key_file: root.join("keys/custodian.key"),
        catalog_dir: repo.join("catalog"),
        policies_dir,
        limits_file,
        database: None,
    };
    let key = CustodianKey::init(&settings.key_file, &settings.data_dir)
        .map_err(|e| SandboxError::Config(e.to_string()))?;
    let catalog = niji_catalog::Catalog::load(&settings.catalog_dir)
        .map_err(|e| SandboxError::Config(e.to_string()))?;
    let cfg = synth_config(persons, &overrides, root.join("synth"));
    let data = settings.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        niji_ingest::synthetic::synthetic_store(&catalog, &key, &cfg, &data, Vec::new())
    })
    .await
    .map_err(|e| SandboxError::Synthetic(e.to_string()))?
    .map_err(|e| SandboxError::Synthetic(e.to_string()))?;
    let visiting =
        Arc::new(Visiting::open(settings.clone(), engine_from_env().await?, dummy_store()).await?);
    let mut tokens = BTreeMap::new();
    for (name, role) in [
        ("alice", UserRole::Researcher),
        ("bob", UserRole::Researcher),
        ("carol", UserRole::Researcher),
        ("dora", UserRole::Committee),
        ("erin", UserRole::Committee),
    ] {
        tokens.insert(
            name.to_string(),
            visiting.platform().add_user("test", name, role).await?,
        );
    }
    let spec = example_spec(repo)?;
    visiting
        .platform()
        .create_project("test", &spec, visiting.catalog())
        .await?;
    let mut other = spec;
    other.id = OTHER.into();
    other.linkage.clear();
    other.members = vec![Member {
        user: "carol".into(),
        role: MemberRole::Lead,
    }];
    visiting
        .platform()
        .create_project("test", &other, visiting.catalog())
        .await?;
    Ok(Seeded {
        visiting,
        settings,
        tokens,
    })
}

/// The engine tests run checked plans on: DataFusion in this process, or with
/// `NIJI_TEST_ENGINE=ballista-standalone` a Ballista scheduler and two executors in this process
/// (to run a test suite again on Ballista, where every result must be the same).
pub async fn engine_from_env() -> Result<Arc<dyn Engine>, SandboxError> {
    let name = std::env::var("NIJI_TEST_ENGINE").unwrap_or_else(|_| "datafusion".into());
    let size = niji_ballista::StandaloneSize {
        memory_mb: 1024,
        ..Default::default()
    };
    Ok(niji_ballista::engine_named(&name, size).await?)
}

/// Every row of `batches` as its cells' text (NULL for null): how tests compare results.
pub fn text_rows(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for i in 0..b.num_rows() {
            out.push(f.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    out
}

/// The dummy store as niji's binary makes it: synthetic, from `niji_ingest::synthetic`.
pub fn dummy_store() -> DummyStoreMaker {
    DummyStoreMaker::new(niji_ingest::synthetic::dummy_store)
}
