//! Peak resident memory of this process (Linux): reset before a measured job, read after it.

use anyhow::Context as _;

/// Starts the peak afresh at the current resident size (`/proc/self/clear_refs`, value 5).
pub fn reset() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak resident memory")
}

/// The peak resident memory since the start or the last [`reset`], in MiB.
pub fn megabytes() -> anyhow::Result<f64> {
    status_megabytes("VmHWM:")
}

/// The resident memory now, in MiB.
pub fn resident_megabytes() -> anyhow::Result<f64> {
    status_megabytes("VmRSS:")
}

fn status_megabytes(field: &str) -> anyhow::Result<f64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .with_context(|| format!("no {field} in /proc/self/status"))
}
