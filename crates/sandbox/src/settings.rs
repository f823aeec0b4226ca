//! Where the Visiting environment finds everything, its limits, and the two modes.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Dummy data generated from the catalog: rows may be seen.
    Dummy,
    /// The real store: results are held for disclosure control.
    Real,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dummy => "dummy",
            Mode::Real => "real",
        }
    }
}

/// `sandbox/limits.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub memory_per_query_mb: usize,
    pub timeout_seconds: u64,
    pub concurrent_per_project: usize,
    pub concurrent_overall: usize,
    pub queue_wait_ms: u64,
    pub max_result_rows: usize,
    #[serde(default)]
    pub target_partitions: usize,
    /// Real-data queries of one user that may fail within an hour before their real-data
    /// queries are paused and a custodian alerted (0: never paused).
    #[serde(default = "default_real_failures_per_hour")]
    pub real_failures_per_hour: u32,
    /// A plan still running after this long has its threads lowered in priority, so that
    /// other queries take the cores first.
    #[serde(default = "default_demote_after_ms")]
    pub demote_after_ms: u64,
}

pub(crate) fn default_demote_after_ms() -> u64 {
    2000
}

pub(crate) fn default_real_failures_per_hour() -> u32 {
    10
}

/// Reads a settings file; any problem is a configuration error naming the file.
pub(crate) fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SandboxError> {
    let bad = |e: &dyn std::fmt::Display| SandboxError::Config(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    toml::from_str(&text).map_err(|e| bad(&e))
}

impl Limits {
    pub fn load(path: &Path) -> Result<Self, SandboxError> {
        let limits: Limits = load_toml(path)?;
        if limits.concurrent_overall == 0 || limits.concurrent_per_project == 0 {
            return Err(SandboxError::Config(
                "concurrency limits must be at least 1".into(),
            ));
        }
        Ok(limits)
    }
}

/// Where the Visiting environment finds everything.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    pub catalog_dir: PathBuf,
    /// `model.conf`, `policy.csv`, `sql.toml`.
    pub policies_dir: PathBuf,
    pub limits_file: PathBuf,
    /// The platform database; `None` is the SQLite file `niji.db` in the data directory.
    pub database: Option<niji_audit::DatabaseUrl>,
}

impl Settings {
    /// Where the platform database is.
    pub fn database(&self) -> niji_audit::DatabaseUrl {
        niji_audit::DatabaseUrl::or_in_data_dir(self.database.as_ref(), &self.data_dir)
    }
}
