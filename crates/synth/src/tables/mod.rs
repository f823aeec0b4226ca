//! The extracts, table by table, generated for one shard of persons.

use niji_pseudo::CivilDate;

use crate::person::{Income, InsurerKind, Period, Person};
use crate::rng::{Rng, Weighted};
use crate::sink::{Enc, Sink, TableSpec};
use crate::world::{
    CARE_SERVICES, DEMENTIA_LEVELS, DIAGNOSES, DRUGS, FacilityKind, PROCEDURES, World,
};

macro_rules! header {
    ($($head:literal),* ; identity ; $($tail:literal),*) => {
        &[$($head,)* "insurer_no", "insured_symbol", "insured_number", "insured_branch", "kana_name", "birth_date", "sex", $($tail),*]
    };
}

pub const RECEIPTS: usize = 0;
pub const DIAGNOSES_T: usize = 1;
pub const PROCEDURES_T: usize = 2;
pub const DRUGS_T: usize = 3;
pub const CHECKUPS: usize = 4;
pub const CARE_CLAIMS: usize = 5;
pub const CARE_CERTS: usize = 6;
pub const DPC_STAYS: usize = 7;
pub const NANBYO: usize = 8;
pub const SHOMAN: usize = 9;
pub const HISTORY: usize = 10;

pub static SPECS: [TableSpec; 11] = [
    TableSpec {
        db: "ndb",
        table: "receipts",
        encoding: Enc::Utf8,
        header: header!("record_key", "claim_ym"; identity; "facility_code", "prefecture", "medical_area", "municipality", "setting", "copay_rate", "income_class", "public_expense", "days", "points"),
        person_level: true,
        defects: true,
    },
    TableSpec {
        db: "ndb",
        table: "diagnoses",
        encoding: Enc::Utf8,
        header: &[
            "record_key",
            "receipt_key",
            "icd10",
            "is_main",
            "is_suspected",
        ],
        person_level: false,
        defects: true,
    },
    TableSpec {
        db: "ndb",
        table: "procedures",
        encoding: Enc::Utf8,
        header: &[
            "record_key",
            "receipt_key",
            "procedure_code",
            "times",
            "points",
        ],
        person_level: false,
        defects: true,
    },
    TableSpec {
        db: "ndb",
        table: "drugs",
        encoding: Enc::Utf8,
        header: &[
            "record_key",
            "receipt_key",
            "drug_code",
            "daily_quantity",
            "days",
        ],
        person_level: false,
        defects: true,
    },
    TableSpec {
        db: "ndb",
        table: "checkups",
        encoding: Enc::Utf8,
        header: header!("record_key", "exam_date"; identity; "municipality", "height_cm", "weight_kg", "bmi", "waist_cm", "sbp", "dbp", "hba1c", "ldl", "smoker"),
        person_level: true,
        defects: true,
    },
    TableSpec {
        db: "kaigo",
        table: "claims",
        encoding: Enc::Cp932,
        header: header!("record_key", "service_ym", "ltc_insurer_no", "ltc_insured_no"; identity; "municipality", "care_level", "service_type", "units", "provider_no"),
        person_level: true,
        defects: true,
    },
    TableSpec {
        db: "kaigo",
        table: "certifications",
        encoding: Enc::Cp932,
        header: header!("record_key", "certified_date", "ltc_insurer_no", "ltc_insured_no"; identity; "municipality", "care_level", "valid_from", "valid_to", "dementia_level"),
        person_level: true,
        defects: true,
    },
    TableSpec {
        db: "dpc",
        table: "stays",
        encoding: Enc::Cp932,
        header: header!("record_key", "facility_code", "admission_date", "discharge_date"; identity; "municipality", "main_icd10", "dpc_code", "surgery", "ambulance", "discharge_outcome"),
        person_level: true,
        defects: true,
    },
    TableSpec {
        db: "nanbyo",
        table: "surveys",
        encoding: Enc::Utf8,
        header: header!("record_key", "consent_no", "fiscal_year", "application_kind", "disease_no", "onset_ym", "severity_stage", "severe", "clinical_score", "designated_doctor", "facility_code"; identity; "address", "phone", "municipality"),
        person_level: true,
        defects: true,
    },
    TableSpec {
        db: "shoman",
        table: "opinions",
        encoding: Enc::Utf8,
        header: header!("record_key", "consent_no", "fiscal_year", "disease_group", "disease_no", "severe", "height_cm", "weight_kg", "designated_doctor", "facility_code"; identity; "guardian_name", "address", "phone", "municipality"),
        person_level: true,
        defects: true,
    },
    TableSpec {
        db: "history",
        table: "insured_history",
        encoding: Enc::Utf8,
        header: &[
            "record_key",
            "history_ref",
            "insurer_no",
            "insured_symbol",
            "insured_number",
            "insured_branch",
            "valid_from",
            "valid_to",
        ],
        person_level: true,
        defects: false,
    },
];

/// How a table writes 生年月日.
#[derive(Debug, Clone, Copy)]
enum BirthStyle {
    /// 元号コード+YYMMDD, as on receipts.
    Wareki,
    Western,
    /// Hand-filled forms: any of several styles.
    Mixed,
}

/// Knobs of the generator that shape the data.
#[derive(Debug, Clone, Copy)]
pub struct Effects {
    /// Relative change of monthly outpatient visit days of 一般Ⅱ from 2022-10 (e.g. -0.031).
    pub copay_effect: f64,
    /// Relative change in 2022-09, the month before (駆け込み需要).
    pub anticipation: f64,
}

pub struct ShardGen<'a> {
    pub world: &'a World,
    pub period: Period,
    pub effects: Effects,
    pub sink: Sink,
    pub rng: Rng,
}

mod claims;
mod names;
mod registries;

use names::*;

pub(super) fn fiscal_year(d: CivilDate) -> i32 {
    if d.month >= 4 { d.year } else { d.year - 1 }
}

pub(super) fn month_start(period: Period, m: u32) -> (CivilDate, i32) {
    let s = CivilDate::from_days_since_epoch(period.start);
    let total = s.month - 1 + m;
    let d = CivilDate {
        year: s.year + (total / 12) as i32,
        month: total % 12 + 1,
        day: 1,
    };
    (d, d.days_since_epoch())
}

pub(super) fn days_in_month(d: CivilDate) -> i32 {
    let (next, _) = month_start(
        Period {
            start: d.days_since_epoch(),
            end: 0,
        },
        1,
    );
    next.days_since_epoch() - d.days_since_epoch()
}

impl ShardGen<'_> {
    /// The seven identity fields of a person on `day`, with the mess of real extracts.
    fn identity(&mut self, p: &Person, day: i32, style: BirthStyle, missing_rate: f64) {
        let cov = p
            .coverage_on(day)
            .filter(|_| !self.rng.chance(missing_rate));
        let rng = &mut self.rng;
        let (insurer, symbol, mut number, branch) = match cov {
            Some(c) => (
                c.insurer.clone(),
                c.symbol.clone(),
                c.number.clone(),
                c.branch.clone(),
            ),
            None => {
                self.sink.count("records_without_insured_number");
                Default::default()
            }
        };
        if !number.is_empty() && rng.chance(0.0005) {
            let mut digits: Vec<u8> = number.into_bytes();
            let pos = rng.below(digits.len() as u64) as usize;
            digits[pos] = b'0' + ((digits[pos] - b'0' + 1 + rng.below(9) as u8) % 10);
            number = String::from_utf8(digits).unwrap_or_default();
            self.sink.count("insured_number_typos");
        }
        let wide = rng.chance(0.03);
        let symbol = if wide {
            full_width_digits(&symbol)
        } else {
            symbol
        };
        let number = if wide {
            full_width_digits(&number)
        } else {
            number
        };
        let name = render_name(rng, &p.kana_name_on(day), &mut self.sink);
        let birth = match style {
            BirthStyle::Wareki => p.birth.to_wareki7().unwrap_or_default(),
            BirthStyle::Western => p.birth.canonical(),
            BirthStyle::Mixed => match rng.below(4) {
                0 => p.birth.canonical(),
                1 => format!("{}/{:02}/{:02}", p.birth.year, p.birth.month, p.birth.day),
                2 => format!("{}-{}-{}", p.birth.year, p.birth.month, p.birth.day),
                _ => {
                    let w = p.birth.to_wareki7().unwrap_or_default();
                    let letter = ["", "M", "T", "S", "H", "R"][usize::from(w.as_bytes()[0] - b'0')];
                    format!(
                        "{letter}{}.{}.{}",
                        &w[1..3].trim_start_matches('0'),
                        p.birth.month,
                        p.birth.day
                    )
                }
            },
        };
        let row = &mut self.sink.row;
        row.push(insurer)
            .push(symbol)
            .push(number)
            .push(branch)
            .push(name)
            .push(birth)
            .push(p.sex);
    }

    fn muni_code(&self, p: &Person) -> &str {
        &self.world.municipalities[p.municipality as usize].code
    }

    pub fn history(&mut self, p: &Person) {
        for c in &p.coverage {
            let key = self.sink.next_key(HISTORY);
            let valid_to =
                c.to.map(|t| CivilDate::from_days_since_epoch(t - 1).canonical())
                    .unwrap_or_default();
            self.sink
                .begin()
                .push(&key)
                .push(format!("H{:016x}", p.history_ref))
                .push(&c.insurer)
                .push(&c.symbol)
                .push(&c.number)
                .push(&c.branch)
                .push(CivilDate::from_days_since_epoch(c.from).canonical())
                .push(valid_to);
            self.sink.emit(HISTORY, &mut self.rng, &key, Some(p.key));
        }
    }
}
