//! The generator's promises: determinism, the truth file, and the 2割負担 natural experiment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;

use niji_synth::{SynthConfig, generate};

fn digest_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "csv") {
                out.push((
                    e.path().strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_seed_gives_byte_identical_extracts_and_another_seed_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |seed: u64, name: &str| {
        let cfg = SynthConfig::new(3000, seed, tmp.path().join(name));
        generate(&cfg, &|_, _| {}).unwrap();
        digest_tree(&tmp.path().join(name))
    };
    let a = run(5, "a");
    assert_eq!(a, run(5, "b"));
    assert_ne!(a, run(6, "c"));
}

#[test]
fn truth_covers_every_person_level_record_and_lives_apart_from_the_extracts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SynthConfig::new(2000, 9, tmp.path().to_path_buf());
    let report = generate(&cfg, &|_, _| {}).unwrap();
    assert!(!tmp.path().join("raw/truth.csv").exists());
    let truth = std::fs::read_to_string(tmp.path().join("truth/truth.csv")).unwrap();
    let mut per_table: HashMap<String, u64> = HashMap::new();
    let mut keys = HashSet::new();
    for line in truth.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 4);
        *per_table.entry(format!("{}.{}", f[0], f[1])).or_default() += 1;
        assert!(
            keys.insert((f[0].to_string(), f[1].to_string(), f[2].to_string())),
            "record keys are unique per table"
        );
    }
    for (name, stats) in &report.tables {
        let person_level = !matches!(
            name.as_str(),
            "ndb.diagnoses" | "ndb.procedures" | "ndb.drugs"
        );
        assert_eq!(
            per_table.get(name).copied().unwrap_or(0),
            if person_level { stats.rows } else { 0 },
            "{name}"
        );
    }
    // No extract carries the person key.
    for (path, bytes) in digest_tree(&tmp.path().join("raw")) {
        assert!(
            !bytes.windows(9).any(|w| w.starts_with(b"P0000")),
            "{path} mentions a person key"
        );
    }
}

/// Difference in differences of mean monthly outpatient visit days per person, 一般Ⅱ vs 一般Ⅰ,
/// April–August 2022 against November 2022–March 2023 (the published design), computed from
/// the raw receipts with the truth file standing in for linkage.
fn did(effect: f64, seed: u64) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = SynthConfig::new(60_000, seed, tmp.path().to_path_buf());
    cfg.copay_effect = effect;
    cfg.defect_rate = 0.0;
    generate(&cfg, &|_, _| {}).unwrap();
    let truth = std::fs::read_to_string(tmp.path().join("truth/truth.csv")).unwrap();
    let person: HashMap<&str, &str> = truth
        .lines()
        .filter(|l| l.starts_with("ndb,receipts,"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2], f[3])
        })
        .collect();
    let receipts = std::fs::read_to_string(tmp.path().join("raw/ndb/receipts.csv")).unwrap();
    let mut lines = receipts.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (key, ym, setting, class, days) = (
        col("record_key"),
        col("claim_ym"),
        col("setting"),
        col("income_class"),
        col("days"),
    );
    let mut group: HashMap<&str, &str> = HashMap::new();
    let mut in_kouki_before: HashSet<&str> = HashSet::new();
    let mut days_by: HashMap<(&str, bool), f64> = HashMap::new();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for f in &rows {
        let p = person[f[key]];
        let month: u32 = f[ym].parse().unwrap();
        match f[class] {
            "一般Ⅰ" | "一般Ⅱ" => {
                group.insert(p, f[class]);
            }
            "一般" if month <= 202208 => {
                in_kouki_before.insert(p);
            }
            _ => {}
        }
    }
    for f in &rows {
        let p = person[f[key]];
        let month: u32 = f[ym].parse().unwrap();
        let pre = (202204..=202208).contains(&month);
        let post = (202211..=202212).contains(&month) || (202301..=202303).contains(&month);
        if f[setting] != "2" || !(pre || post) || !in_kouki_before.contains(p) {
            continue;
        }
        if let Some(g) = group.get(p) {
            *days_by.entry((g, post)).or_default() += f[days].parse::<f64>().unwrap();
        }
    }
    let members = |g: &str| {
        group
            .iter()
            .filter(|(p, v)| **v == g && in_kouki_before.contains(*p))
            .count() as f64
    };
    let mean = |g: &str, post: bool| days_by[&(g, post)] / (members(g) * 5.0);
    let (n2, n1) = (members("一般Ⅱ"), members("一般Ⅰ"));
    assert!(n2 > 1000.0 && n1 > 2000.0, "groups of {n2} and {n1}");
    (mean("一般Ⅱ", true) / mean("一般Ⅱ", false)) / (mean("一般Ⅰ", true) / mean("一般Ⅰ", false))
        - 1.0
}

#[test]
fn the_injected_copay_effect_is_recovered_by_difference_in_differences() {
    let strong = did(-0.20, 3);
    assert!(
        (-0.25..-0.15).contains(&strong),
        "effect -20% injected, DiD {strong:.4}"
    );
    let none = did(0.0, 3);
    assert!(none.abs() < 0.04, "no effect injected, DiD {none:.4}");
}
