//! `niji synth`: raw extracts of the five public databases as a custodian would receive them,
//! with direct identifiers in the clear and the mess of real data, plus a truth file (kept
//! apart) that says which person each record belongs to, so linkage can be measured.
//!
//! Output of [`generate`] under `out`:
//! - `raw/<db>/<table>.csv`: the extracts (UTF-8, or CP932 for 介護DB and DPC) and
//!   `raw/reference/*.csv` (municipalities with real-scale populations, facilities);
//! - `truth/truth.csv` (`db,table,record_key,person_key`) and `truth/synth_report.json`.
//!
//! The same seed and settings give byte-identical files.

mod person;
mod rng;
mod sink;
mod tables;
mod world;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use niji_pseudo::CivilDate;
use rayon::prelude::*;
use serde::Serialize;

use person::{InsurerKind, Period, Person};
use rng::Rng;
pub use sink::DEFECTS;
use sink::{Sink, TableStats, header_bytes};
use tables::{Effects, SPECS, ShardGen};
use world::{FacilityKind, PREFECTURES, World};

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid settings: {0}")]
    Settings(String),
}

#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub persons: u64,
    pub seed: u64,
    pub out: PathBuf,
    /// First month of the data period, `YYYYMM`.
    pub start_ym: u32,
    pub months: u32,
    /// Effect of 後期高齢者 2割負担 on monthly outpatient visit days of 一般Ⅱ from 2022-10.
    pub copay_effect: f64,
    /// Change in 2022-09, before the switch (駆け込み需要).
    pub anticipation: f64,
    /// Share of extract rows made defective (column count, date, insured number, bytes).
    pub defect_rate: f64,
    /// A 難病DB delivery alone: every person is a certified patient and only the registry's
    /// forms, their insured history (for ID5) and the reference tables are written, so that a registry of national size
    /// (a million patients) does not need a population of a hundred million behind it.
    pub nanbyo_registry: bool,
}

impl SynthConfig {
    pub fn new(persons: u64, seed: u64, out: PathBuf) -> Self {
        Self {
            persons,
            seed,
            out,
            start_ym: 202110,
            months: 24,
            copay_effect: -0.031,
            anticipation: 0.02,
            defect_rate: 0.0005,
            nanbyo_registry: false,
        }
    }
}

/// What was generated, written to `truth/synth_report.json`.
#[derive(Debug, Serialize)]
pub struct SynthReport {
    pub persons: u64,
    pub seed: u64,
    pub start_ym: u32,
    pub months: u32,
    pub copay_effect: f64,
    pub anticipation: f64,
    pub tables: BTreeMap<String, TableStats>,
    pub events: BTreeMap<&'static str, u64>,
    pub seconds: f64,
}

impl SynthReport {
    pub fn total_rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }
}

const SHARD: u64 = 5_000;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Persons of one shard; twins are generated next to each other within it.
fn shard_persons(
    world: &World,
    period: Period,
    seed: u64,
    shard: u64,
    persons: u64,
    registry: bool,
) -> Vec<Person> {
    let mut rng = Rng::new(seed, 1 + shard);
    let first = shard * SHARD;
    let last = ((shard + 1) * SHARD).min(persons);
    let mut out: Vec<Person> = Vec::with_capacity((last - first) as usize);
    let mut key = first;
    while key < last {
        let p = person::generate(&mut rng, world, period, key, None, registry);
        let twin = !registry && key + 1 < last && p.age_on(period.start) < 40 && rng.chance(0.004);
        out.push(p);
        key += 1;
        if twin {
            let t = person::generate(&mut rng, world, period, key, out.last(), false);
            out.push(t);
            key += 1;
        }
    }
    out
}

fn generate_shard(world: &World, cfg: &SynthConfig, period: Period, shard: u64) -> Sink {
    let persons = shard_persons(
        world,
        period,
        cfg.seed,
        shard,
        cfg.persons,
        cfg.nanbyo_registry,
    );
    let mut g = ShardGen {
        world,
        period,
        effects: Effects {
            copay_effect: cfg.copay_effect,
            anticipation: cfg.anticipation,
        },
        sink: Sink::new(&SPECS, shard, cfg.defect_rate),
        rng: Rng::new(cfg.seed, 0x1_0000_0000 + shard),
    };
    if cfg.nanbyo_registry {
        // The insured history too: ID5 (and so the person behind each form) comes from it.
        for p in &persons {
            g.history(p);
            g.rare_disease_forms(p);
        }
        count_person_events(&mut g.sink, &persons, period);
        return g.sink;
    }
    for p in &persons {
        g.history(p);
    }
    // Month by month, so a person's receipts are not adjacent in the extract.
    for m in 0..cfg.months {
        for p in &persons {
            g.receipts_month(p, m);
        }
    }
    for p in &persons {
        g.checkups(p);
        g.care(p, cfg.months);
        g.rare_disease_forms(p);
    }
    count_person_events(&mut g.sink, &persons, period);
    g.sink
}

fn count_person_events(sink: &mut Sink, persons: &[Person], period: Period) {
    for p in persons {
        sink.count("persons");
        if p.coverage.is_empty() {
            sink.count("persons_without_insurance");
        }
        if p.marriage.is_some() {
            sink.count("marriages_in_period");
        }
        let changes = p
            .coverage
            .iter()
            .filter(|c| c.from > period.start && c.from < period.end)
            .count();
        if changes > 0 {
            sink.count("persons_with_insured_number_change_in_period");
        }
        if p.coverage
            .iter()
            .any(|c| c.kind == InsurerKind::Kouki && c.from > period.start)
        {
            sink.count("moves_to_kouki_at_75");
        }
        if p.coverage
            .first()
            .is_some_and(|c| c.branch != "00" && c.branch != "01")
        {
            sink.count("second_child_on_family_card");
        }
        if p.nanbyo.is_some() {
            sink.count("nanbyo_patients");
        }
        if p.shoman.is_some() {
            sink.count("shoman_patients");
        }
    }
}

fn period_of(cfg: &SynthConfig) -> Result<Period, SynthError> {
    let start = CivilDate::new((cfg.start_ym / 100) as i32, cfg.start_ym % 100, 1)
        .map_err(|_| SynthError::Settings(format!("start month {} is not YYYYMM", cfg.start_ym)))?;
    if cfg.months == 0 || cfg.months > 120 {
        return Err(SynthError::Settings(
            "months must be between 1 and 120".into(),
        ));
    }
    let end_month = start.month - 1 + cfg.months;
    let end = CivilDate {
        year: start.year + (end_month / 12) as i32,
        month: end_month % 12 + 1,
        day: 1,
    };
    Ok(Period {
        start: start.days_since_epoch(),
        end: end.days_since_epoch(),
    })
}

/// Generates the extracts and the truth file; `progress` is called with rows written so far.
pub fn generate(
    cfg: &SynthConfig,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<SynthReport, SynthError> {
    if cfg.persons == 0 {
        return Err(SynthError::Settings("persons must be at least 1".into()));
    }
    let started = Instant::now();
    let period = period_of(cfg)?;
    let world = World::new(cfg.seed);
    let raw = cfg.out.join("raw");
    let truth_dir = cfg.out.join("truth");
    let mut files = Vec::new();
    for spec in &SPECS {
        let dir = raw.join(spec.db);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("{}.csv", spec.table));
        let mut f = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io_err(&path))?);
        f.write_all(&header_bytes(spec)).map_err(io_err(&path))?;
        files.push((path, f));
    }
    fs::create_dir_all(&truth_dir).map_err(io_err(&truth_dir))?;
    let truth_path = truth_dir.join("truth.csv");
    let mut truth = BufWriter::with_capacity(
        1 << 20,
        File::create(&truth_path).map_err(io_err(&truth_path))?,
    );
    truth
        .write_all(b"db,table,record_key,person_key\n")
        .map_err(io_err(&truth_path))?;
    write_reference(&world, &raw)?;

    let shards = cfg.persons.div_ceil(SHARD);
    let batch = (rayon::current_num_threads() as u64 * 2).max(2);
    let mut stats = vec![TableStats::default(); SPECS.len()];
    let mut events: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut rows_done = 0u64;
    let mut first = 0;
    while first < shards {
        let last = (first + batch).min(shards);
        let sinks: Vec<Sink> = (first..last)
            .into_par_iter()
            .map(|s| generate_shard(&world, cfg, period, s))
            .collect();
        for sink in sinks {
            for (i, ((path, f), buf)) in files.iter_mut().zip(&sink.bufs).enumerate() {
                f.write_all(buf).map_err(io_err(path))?;
                stats[i].rows += sink.stats[i].rows;
                rows_done += sink.stats[i].rows;
                for (k, v) in &sink.stats[i].defective {
                    *stats[i].defective.entry(k).or_default() += v;
                }
            }
            truth.write_all(&sink.truth).map_err(io_err(&truth_path))?;
            for (k, v) in sink.counters {
                *events.entry(k).or_default() += v;
            }
        }
        progress(last.min(shards) * SHARD, rows_done);
        first = last;
    }
    for (path, mut f) in files {
        f.flush().map_err(io_err(&path))?;
    }
    truth.flush().map_err(io_err(&truth_path))?;

    let report = SynthReport {
        persons: cfg.persons,
        seed: cfg.seed,
        start_ym: cfg.start_ym,
        months: cfg.months,
        copay_effect: cfg.copay_effect,
        anticipation: cfg.anticipation,
        tables: SPECS
            .iter()
            .zip(stats)
            .map(|(s, st)| (format!("{}.{}", s.db, s.table), st))
            .collect(),
        events,
        seconds: started.elapsed().as_secs_f64(),
    };
    let report_path = truth_dir.join("synth_report.json");
    let json =
        serde_json::to_string_pretty(&report).map_err(|e| SynthError::Settings(e.to_string()))?;
    fs::write(&report_path, json).map_err(io_err(&report_path))?;
    Ok(report)
}

/// Public reference tables: municipalities (real-scale populations, for the municipality rules
/// of disclosure control) and facilities.
fn write_reference(world: &World, raw: &Path) -> Result<(), SynthError> {
    let dir = raw.join("reference");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut text = String::from(
        "record_key,municipality,prefecture,prefecture_name,medical_area,municipality_name,population\n",
    );
    for m in &world.municipalities {
        let pref_name = PREFECTURES[m.pref as usize - 1].0;
        text.push_str(&format!(
            "M{},{},{:02},{},{},{},{}\n",
            m.code, m.code, m.pref, pref_name, m.area, m.name, m.population
        ));
    }
    let path = dir.join("municipalities.csv");
    fs::write(&path, text).map_err(io_err(&path))?;
    let mut text = String::from("record_key,facility_code,municipality,medical_area,kind,beds\n");
    for f in &world.facilities {
        let m = &world.municipalities[f.municipality as usize];
        let kind = match f.kind {
            FacilityKind::Clinic => "clinic",
            FacilityKind::Hospital => "hospital",
            FacilityKind::DpcHospital => "dpc_hospital",
        };
        text.push_str(&format!(
            "F{},{},{},{},{},{}\n",
            f.code, f.code, m.code, m.area, kind, f.beds
        ));
    }
    let path = dir.join("facilities.csv");
    fs::write(&path, text).map_err(io_err(&path))
}
