//! `niji-bench acro` end to end: a real process, real files, ACRO from PyPI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// ACRO (`scripts/setup-python.sh` installs it) and niji check the same tables of the same
/// receipts: every cell ACRO flags, niji flags too (the command fails otherwise).
#[test]
fn niji_flags_every_cell_acro_flags() {
    // Read at run time: a test binary reused from another checkout (one target directory
    // for several) must find this one's files.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo");
    let repo = Path::new(&manifest).join("..").canonicalize().unwrap();
    let python = std::env::var_os("NIJI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} missing: run scripts/setup-python.sh (scripts/test.sh does)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let script = repo.join("scripts/acro_check.py");
    let out = Command::new(env!("CARGO_BIN_EXE_niji-bench"))
        .current_dir(dir.path())
        .env("NIJI_CATALOG", repo.join("catalog"))
        .env("NIJI_POLICIES", repo.join("policies"))
        .env("NIJI_LIMITS", repo.join("sandbox/limits.toml"))
        .args([
            "acro",
            "--persons",
            "20000",
            "--python",
            python.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "niji-bench acro: {all}");
    assert!(
        all.contains("every cell ACRO flags, niji flags too"),
        "{all}"
    );
    // Each table's line: cells, ACRO flags, niji flags, both, ACRO only, niji only.
    for table in [
        "inpatient receipts 2022-10, prefecture × sex",
        "mean points of the same",
        "sum of points, prefecture × copay rate",
        "outpatient days, prefecture × copay rate",
    ] {
        let line = all
            .lines()
            .find(|l| l.starts_with(table))
            .unwrap_or_else(|| panic!("no line for {table}: {all}"));
        let n: Vec<usize> = line[table.len()..]
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        let [cells, acro, niji, both, acro_only, _] = n[..] else {
            panic!("{line}");
        };
        assert_eq!(acro_only, 0, "{line}");
        assert_eq!(both, acro, "every ACRO flag is niji's too: {line}");
        assert!(niji >= acro && niji <= cells, "{line}");
        // On outpatient days both checkers pass cells: not a comparison of blanket refusals.
        if table.starts_with("outpatient") {
            assert!(acro < cells && niji < cells, "{line}");
        }
    }
}
