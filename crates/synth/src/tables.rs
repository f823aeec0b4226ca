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
        header: header!("record_key", "consent_no", "fiscal_year", "disease_no", "onset_ym", "severity_stage", "severe", "clinical_score", "designated_doctor", "facility_code"; identity; "address", "phone", "municipality"),
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

const KANA_FULL: &str = "ァアィイゥウェエォオカキクケコサシスセソタチッツテトナニヌネノハヒフヘホマミムメモャヤュユョヨラリルレロワヲンー";
const KANA_HALF: &str = "ｧｱｨｲｩｳｪｴｫｵｶｷｸｹｺｻｼｽｾｿﾀﾁｯﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓｬﾔｭﾕｮﾖﾗﾘﾙﾚﾛﾜｦﾝｰ";
const VOICED: &str = "ガギグゲゴザジズゼゾダヂヅデドバビブベボヴ";
const VOICED_BASE: &str = "カキクケコサシスセソタチツテトハヒフヘホウ";
const SEMI: &str = "パピプペポ";
const SEMI_BASE: &str = "ハヒフヘホ";

fn half_width(c: char, small_as_large: bool) -> String {
    let find = |set: &str, c: char| set.chars().position(|x| x == c);
    let half = |c: char| {
        let c = if small_as_large {
            niji_pseudo::normalize::large_kana(c)
        } else {
            c
        };
        find(KANA_FULL, c)
            .and_then(|i| KANA_HALF.chars().nth(i))
            .unwrap_or(c)
    };
    if let Some(i) = find(VOICED, c) {
        return format!("{}ﾞ", half(VOICED_BASE.chars().nth(i).unwrap_or(c)));
    }
    if let Some(i) = find(SEMI, c) {
        return format!("{}ﾟ", half(SEMI_BASE.chars().nth(i).unwrap_or(c)));
    }
    match c {
        '　' => " ".to_string(),
        _ => half(c).to_string(),
    }
}

/// A name as some clerk or system wrote it: widths, spaces, hiragana, legacy large kana.
fn render_name(rng: &mut Rng, canonical: &str, sink: &mut Sink) -> String {
    let mut name: String = canonical.to_string();
    if rng.chance(0.005) {
        // One mistyped kana.
        let chars: Vec<char> = name.chars().collect();
        let pos = rng.below(chars.len() as u64) as usize;
        if chars[pos] != '　' {
            let replacement = *rng.pick(&[
                'ア', 'カ', 'サ', 'タ', 'ナ', 'ハ', 'マ', 'ヤ', 'ラ', 'ワ', 'ン', 'ー',
            ]);
            if replacement != chars[pos] {
                name = chars
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| if i == pos { replacement } else { c })
                    .collect();
                sink.count("name_typos");
            }
        }
    }
    match rng.below(100) {
        0..=59 => name,
        60..=69 => name.replace('　', " "),
        70..=74 => name.replace('　', ""),
        75..=77 => name.replace('　', "　　"),
        78..=91 => {
            let legacy = rng.chance(0.5);
            name.chars().map(|c| half_width(c, legacy)).collect()
        }
        _ => name
            .chars()
            .map(|c| {
                if ('ァ'..='ヶ').contains(&c) {
                    char::from_u32(c as u32 - 0x60).unwrap_or(c)
                } else {
                    c
                }
            })
            .collect(),
    }
}

fn full_width_digits(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(c as u32 - 0x30 + 0xFF10).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn fiscal_year(d: CivilDate) -> i32 {
    if d.month >= 4 { d.year } else { d.year - 1 }
}

fn month_start(period: Period, m: u32) -> (CivilDate, i32) {
    let s = CivilDate::from_days_since_epoch(period.start);
    let total = s.month - 1 + m;
    let d = CivilDate {
        year: s.year + (total / 12) as i32,
        month: total % 12 + 1,
        day: 1,
    };
    (d, d.days_since_epoch())
}

fn days_in_month(d: CivilDate) -> i32 {
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

    /// Outpatient and inpatient receipts of one person-month, with their detail rows and, for
    /// stays at DPC hospitals, the DPC record.
    pub fn receipts_month(&mut self, p: &Person, month: u32) {
        let (first, day0) = month_start(self.period, month);
        if p.birth.days_since_epoch() > day0 {
            return;
        }
        let age = p.age_on(day0);
        let mid = day0 + 14;
        let cov = p.coverage_on(mid);
        let kouki = cov.is_some_and(|c| c.kind == InsurerKind::Kouki);
        let base = match age {
            ..5 => 1.4,
            5..15 => 0.7,
            15..40 => 0.45,
            40..65 => 0.8,
            65..75 => 1.6,
            75..85 => 2.4,
            _ => 2.5,
        };
        let season = [
            1.08, 1.05, 1.0, 0.98, 0.96, 0.97, 0.98, 0.95, 0.97, 1.0, 1.02, 1.06,
        ][first.month as usize - 1];
        let trend = 1.0 + 0.004 * f64::from(month);
        let lambda = base * p.frailty * season * trend;
        let ym = first.year as u32 * 100 + first.month;
        let ippan2 = kouki && p.income == Income::Ippan2;
        let multiplier = match ym {
            202210.. if ippan2 => 1.0 + self.effects.copay_effect,
            202209 if ippan2 => 1.0 + self.effects.anticipation,
            _ => 1.0,
        };
        let latent = self.rng.poisson(lambda);
        let days = if multiplier <= 1.0 {
            self.rng.thin(latent, multiplier)
        } else {
            latent + self.rng.poisson(lambda * (multiplier - 1.0))
        };
        let (copay, income_class) = copay(p, age, kouki, ym);
        if days > 0 {
            let receipts = days.min(1 + self.rng.poisson(if age >= 65 { 0.35 } else { 0.15 }));
            let mut left = days;
            for r in 0..receipts {
                let d = if r + 1 == receipts {
                    left
                } else {
                    1 + self.rng.below(u64::from(left - (receipts - r - 1))) as u32
                };
                left -= d;
                let facility = match r {
                    0 => p.clinics[0],
                    1 => p.clinics[1],
                    _ => *self
                        .rng
                        .pick(&self.world.hospitals_of[p.municipality as usize]),
                };
                self.receipt(p, ym, mid, facility, 2, d, copay, income_class, age);
            }
        }
        let inpatient_rate = match age {
            ..15 => 0.002,
            15..40 => 0.002,
            40..65 => 0.004,
            65..75 => 0.01,
            75..85 => 0.02,
            _ => 0.035,
        } * p.frailty;
        if self.rng.chance(inpatient_rate) {
            let hospital = *self
                .rng
                .pick(&self.world.hospitals_of[p.municipality as usize]);
            let month_days = days_in_month(first);
            let admit = self.rng.below(month_days as u64) as i32;
            let stay = (1 + self.rng.poisson(12.0) as i32).min(month_days - admit);
            self.receipt(
                p,
                ym,
                mid,
                hospital,
                1,
                stay as u32,
                copay,
                income_class,
                age,
            );
            if self.world.facilities[hospital as usize].kind == FacilityKind::DpcHospital {
                self.dpc_stay(p, hospital, day0 + admit, stay);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn receipt(
        &mut self,
        p: &Person,
        ym: u32,
        day: i32,
        facility: u32,
        setting: u8,
        days: u32,
        copay: u8,
        income_class: &str,
        age: i32,
    ) {
        let key = self.sink.next_key(RECEIPTS);
        let muni = &self.world.municipalities[p.municipality as usize];
        let per_day = if setting == 1 { 3500.0 } else { 420.0 } * (self.rng.normal() * 0.5).exp();
        let points = (per_day * f64::from(days)) as u32 + 50;
        self.sink.begin().push(&key).push(ym);
        let welfare = p.coverage.is_empty();
        self.identity(p, day, BirthStyle::Wareki, 0.02);
        let (code, pref, area, muni_code) = (
            &self.world.facilities[facility as usize].code,
            muni.pref,
            &muni.area,
            &muni.code,
        );
        self.sink
            .row
            .push(code)
            .push(format!("{pref:02}"))
            .push(area)
            .push(muni_code)
            .push(setting)
            .push(if welfare { 0 } else { copay })
            .push(income_class)
            .push(if welfare { "12" } else { "" })
            .push(days)
            .push(points);
        self.sink.emit(RECEIPTS, &mut self.rng, &key, Some(p.key));
        self.details(p, &key, age, days);
    }

    fn details(&mut self, p: &Person, receipt_key: &str, age: i32, days: u32) {
        let group = if age < 40 {
            0
        } else if age < 65 {
            1
        } else {
            2
        };
        let mut codes: Vec<usize> = p
            .chronic
            .iter()
            .map(|&c| c as usize)
            .filter(|_| self.rng.chance(0.8))
            .collect();
        if codes.is_empty() || self.rng.chance(0.5) {
            let acute = acute_weights(group);
            codes.push(acute.1[acute.0.sample(&mut self.rng)]);
        }
        for (i, &c) in codes.iter().enumerate() {
            let key = self.sink.next_key(DIAGNOSES_T);
            let suspected = u8::from(self.rng.chance(0.05));
            self.sink
                .begin()
                .push(&key)
                .push(receipt_key)
                .push(DIAGNOSES[c].0)
                .push(u8::from(i == 0))
                .push(suspected);
            self.sink.emit(DIAGNOSES_T, &mut self.rng, &key, None);
        }
        for _ in 0..1 + self.rng.poisson(1.5) {
            let (code, points) = *self.rng.pick(&PROCEDURES);
            let key = self.sink.next_key(PROCEDURES_T);
            let times = days.min(1 + self.rng.below(2) as u32);
            self.sink
                .begin()
                .push(&key)
                .push(receipt_key)
                .push(code)
                .push(times)
                .push(points);
            self.sink.emit(PROCEDURES_T, &mut self.rng, &key, None);
        }
        for &c in &codes {
            if let Some((_, drug, qty)) = DRUGS.iter().find(|d| d.0 == DIAGNOSES[c].0) {
                let key = self.sink.next_key(DRUGS_T);
                let supply = *self.rng.pick(&[14, 28, 30, 56, 60, 90]);
                self.sink
                    .begin()
                    .push(&key)
                    .push(receipt_key)
                    .push(drug)
                    .push(qty)
                    .push(supply);
                self.sink.emit(DRUGS_T, &mut self.rng, &key, None);
            }
        }
    }

    fn dpc_stay(&mut self, p: &Person, hospital: u32, admit: i32, stay: i32) {
        let key = self.sink.next_key(DPC_STAYS);
        let main = p
            .chronic
            .first()
            .map(|&c| DIAGNOSES[c as usize].0)
            .unwrap_or("J18");
        let mdc = match main.as_bytes()[0] {
            b'I' => "05",
            b'E' => "10",
            b'J' => "04",
            b'K' | b'C' => "06",
            b'M' => "07",
            b'N' => "11",
            b'S' => "16",
            b'G' => "01",
            b'F' => "17",
            _ => "18",
        };
        let dpc = format!(
            "{mdc}{:04}xx{:02}{}{}xx",
            self.rng.below(300),
            self.rng.below(100),
            self.rng.below(2),
            self.rng.below(2)
        );
        let facility = self.world.facilities[hospital as usize].code.clone();
        self.sink
            .begin()
            .push(&key)
            .push(facility)
            .push(CivilDate::from_days_since_epoch(admit).canonical())
            .push(CivilDate::from_days_since_epoch(admit + stay - 1).canonical());
        self.identity(p, admit, BirthStyle::Western, 0.01);
        let muni = self.muni_code(p).to_string();
        let surgery = u8::from(self.rng.chance(0.3));
        let ambulance = u8::from(self.rng.chance(0.2));
        let outcome = *self.rng.pick(&[1, 1, 1, 1, 2, 3, 4, 5, 6]);
        self.sink
            .row
            .push(muni)
            .push(main)
            .push(dpc)
            .push(surgery)
            .push(ambulance)
            .push(outcome);
        self.sink.emit(DPC_STAYS, &mut self.rng, &key, Some(p.key));
    }

    /// 特定健診: ages 40–74, at most once a fiscal year.
    pub fn checkups(&mut self, p: &Person) {
        let propensity = 0.25 + 0.6 * self.rng.f64();
        let mut fy_start = month_start(self.period, 0).0;
        while fy_start.month != 4 {
            fy_start = month_start(
                Period {
                    start: fy_start.days_since_epoch(),
                    end: 0,
                },
                1,
            )
            .0;
        }
        let mut day = fy_start.days_since_epoch() + 60 + self.rng.below(200) as i32;
        while day < self.period.end {
            let age = p.age_on(day);
            if (40..75).contains(&age) && day >= self.period.start && self.rng.chance(propensity) {
                self.checkup(p, day, age);
            }
            day += 365;
        }
    }

    fn checkup(&mut self, p: &Person, day: i32, age: i32) {
        let key = self.sink.next_key(CHECKUPS);
        let rng = &mut self.rng;
        let male = p.sex == 1;
        let height =
            if male { 171.0 } else { 158.0 } - f64::from(age - 40) * 0.12 + rng.normal() * 6.0;
        let bmi_target = if male { 24.0 } else { 22.5 } + rng.normal() * 3.2;
        let weight = bmi_target * (height / 100.0).powi(2);
        let bmi = weight / (height / 100.0).powi(2);
        let waist = bmi * 3.6 + if male { 2.0 } else { -2.0 } + rng.normal() * 4.0;
        let hypertension = p.chronic.iter().any(|&c| DIAGNOSES[c as usize].0 == "I10");
        let diabetes = p.chronic.iter().any(|&c| DIAGNOSES[c as usize].0 == "E11");
        let sbp = 112.0
            + f64::from(age - 40) * 0.6
            + if hypertension { 14.0 } else { 0.0 }
            + rng.normal() * 13.0;
        let dbp = sbp * 0.6 + rng.normal() * 7.0;
        let hba1c = 5.5 + if diabetes { 1.6 } else { 0.0 } + rng.normal() * 0.35;
        let ldl = 122.0 + rng.normal() * 30.0;
        let smoker = u8::from(rng.chance(if male { 0.28 } else { 0.08 }));
        self.sink
            .begin()
            .push(&key)
            .push(CivilDate::from_days_since_epoch(day).canonical());
        self.identity(p, day, BirthStyle::Western, 0.005);
        let muni = self.muni_code(p).to_string();
        self.sink
            .row
            .push(muni)
            .push(format!("{height:.1}"))
            .push(format!("{weight:.1}"))
            .push(format!("{bmi:.1}"))
            .push(format!("{waist:.1}"))
            .push(sbp.round())
            .push(dbp.round())
            .push(format!("{hba1c:.1}"))
            .push(ldl.round())
            .push(smoker);
        self.sink.emit(CHECKUPS, &mut self.rng, &key, Some(p.key));
    }

    /// 要介護認定 every twelve months from the first, and monthly claims for service users.
    pub fn care(&mut self, p: &Person, months: u32) {
        let Some((from, level)) = p.care else { return };
        let ltc_insurer = {
            let code = self.muni_code(p);
            format!("{code}{}", niji_pseudo::normalize::check_digit(code))
        };
        let mut level = level as i64;
        let mut cert_day = from;
        while cert_day < self.period.end {
            if cert_day >= self.period.start {
                let key = self.sink.next_key(CARE_CERTS);
                let dementia =
                    DEMENTIA_LEVELS[self.rng.below(DEMENTIA_LEVELS.len() as u64) as usize];
                self.sink
                    .begin()
                    .push(&key)
                    .push(CivilDate::from_days_since_epoch(cert_day).canonical())
                    .push(&ltc_insurer)
                    .push(&p.ltc_number);
                self.identity(p, cert_day, BirthStyle::Wareki, 0.01);
                let muni = self.muni_code(p).to_string();
                self.sink
                    .row
                    .push(muni)
                    .push(crate::world::CARE_LEVELS[level as usize].0)
                    .push(CivilDate::from_days_since_epoch(cert_day).canonical())
                    .push(CivilDate::from_days_since_epoch(cert_day + 364).canonical())
                    .push(dementia);
                self.sink.emit(CARE_CERTS, &mut self.rng, &key, Some(p.key));
            }
            cert_day += 365;
            level = (level + self.rng.range(-1, 1)).clamp(0, 6);
        }
        if !self.rng.chance(0.85) {
            return;
        }
        let service = Weighted::new([4.0, 1.0, 4.0, 1.0, 2.0, 1.5]);
        let (kind, units) = CARE_SERVICES[service.sample(&mut self.rng)];
        for m in 0..months {
            let (first, day0) = month_start(self.period, m);
            if day0 < from {
                continue;
            }
            let key = self.sink.next_key(CARE_CLAIMS);
            let provider = format!(
                "{:02}7{:07}",
                self.world.municipalities[p.municipality as usize].pref,
                (p.key * 31 + 7) % 10_000_000
            );
            self.sink
                .begin()
                .push(&key)
                .push(first.year as u32 * 100 + first.month)
                .push(&ltc_insurer)
                .push(&p.ltc_number);
            self.identity(p, day0 + 10, BirthStyle::Wareki, 0.01);
            let muni = self.muni_code(p).to_string();
            let units = (f64::from(units) * (0.7 + 0.6 * self.rng.f64())) as u32;
            self.sink
                .row
                .push(muni)
                .push(crate::world::CARE_LEVELS[p.care.map_or(0, |c| c.1) as usize].0)
                .push(kind)
                .push(units)
                .push(provider);
            self.sink
                .emit(CARE_CLAIMS, &mut self.rng, &key, Some(p.key));
        }
    }

    /// A made-up address in the person's municipality and a phone number: direct identifiers
    /// that ingest must drop.
    fn contact(&mut self, p: &Person) -> (String, String) {
        let muni = &self.world.municipalities[p.municipality as usize];
        let address = format!(
            "{}{}丁目{}番{}号",
            muni.name,
            1 + self.rng.below(9),
            1 + self.rng.below(30),
            1 + self.rng.below(20)
        );
        let phone = format!(
            "0{}-{:04}-{:04}",
            muni.pref % 9 + 1,
            self.rng.below(10_000),
            self.rng.below(10_000)
        );
        (address, phone)
    }

    /// The code of a hospital in the person's 二次医療圏.
    fn area_hospital(&mut self, p: &Person) -> String {
        let idx = *self
            .rng
            .pick(&self.world.hospitals_of[p.municipality as usize]);
        self.world.facilities[idx as usize].code.clone()
    }

    /// 臨床調査個人票 (難病) and 医療意見書 (小慢), one per fiscal year while registered.
    pub fn rare_disease_forms(&mut self, p: &Person) {
        let first_fy = fiscal_year(CivilDate::from_days_since_epoch(self.period.start));
        let last_fy = fiscal_year(CivilDate::from_days_since_epoch(self.period.end - 1));
        let muni = self.muni_code(p).to_string();
        if let Some(n) = p.nanbyo.clone() {
            let mut score = 20.0 + 12.0 * f64::from(n.stage) + self.rng.normal() * 6.0;
            for fy in first_fy..=last_fy {
                if fy > first_fy && !self.rng.chance(0.9) {
                    break;
                }
                let day = CivilDate {
                    year: fy,
                    month: 7,
                    day: 1,
                }
                .days_since_epoch()
                    + self.rng.below(120) as i32;
                let key = self.sink.next_key(NANBYO);
                let facility = self.area_hospital(p);
                self.sink
                    .begin()
                    .push(&key)
                    .push(&n.consent)
                    .push(fy)
                    .push(n.code)
                    .push(n.onset.year as u32 * 100 + n.onset.month)
                    .push(n.stage)
                    .push(u8::from(n.stage >= 3))
                    .push(format!("{:.0}", score.clamp(0.0, 100.0)))
                    .push(format!("D{:07}", n.doctor))
                    .push(facility);
                self.identity(p, day, BirthStyle::Mixed, 0.03);
                let (address, phone) = self.contact(p);
                self.sink.row.push(address).push(phone).push(&muni);
                self.sink.emit(NANBYO, &mut self.rng, &key, Some(p.key));
                score += 2.0 + self.rng.normal() * 3.0;
            }
        }
        if let Some(s) = p.shoman.clone() {
            for fy in first_fy..=last_fy {
                let day = CivilDate {
                    year: fy,
                    month: 6,
                    day: 1,
                }
                .days_since_epoch()
                    + self.rng.below(150) as i32;
                let age = p.age_on(day);
                if age >= 20 {
                    break;
                }
                let key = self.sink.next_key(SHOMAN);
                let facility = self.area_hospital(p);
                let height = 50.0 + f64::from(age.min(17)) * 6.5 + self.rng.normal() * 5.0;
                let weight = (height / 100.0).powi(2) * (16.0 + self.rng.normal() * 2.0);
                self.sink
                    .begin()
                    .push(&key)
                    .push(&s.consent)
                    .push(fy)
                    .push(s.group)
                    .push(s.number)
                    .push(u8::from(self.rng.chance(0.2)))
                    .push(format!("{height:.1}"))
                    .push(format!("{weight:.1}"))
                    .push(format!("D{:07}", s.doctor))
                    .push(facility);
                self.identity(p, day, BirthStyle::Mixed, 0.03);
                let guardian = format!(
                    "{}　{}",
                    p.surname_on(day),
                    self.rng.pick(&crate::world::FEMALE_GIVEN)
                );
                let (address, phone) = self.contact(p);
                self.sink
                    .row
                    .push(guardian)
                    .push(address)
                    .push(phone)
                    .push(&muni);
                self.sink.emit(SHOMAN, &mut self.rng, &key, Some(p.key));
            }
        }
    }
}

/// 負担割合 and the 所得区分 shown on 後期高齢者 receipts (一般 splits into Ⅰ and Ⅱ from 2022-10).
fn copay(p: &Person, age: i32, kouki: bool, ym: u32) -> (u8, &'static str) {
    if kouki {
        let after = ym >= 202210;
        return match p.income {
            Income::Low => (1, "低所得"),
            Income::Ippan1 => (1, if after { "一般Ⅰ" } else { "一般" }),
            Income::Ippan2 if after => (2, "一般Ⅱ"),
            Income::Ippan2 => (1, "一般"),
            Income::Genekinami => (3, "現役並み"),
        };
    }
    match age {
        ..6 => (2, ""),
        70.. if p.income != Income::Genekinami => (2, ""),
        _ => (3, ""),
    }
}

fn acute_weights(group: usize) -> &'static (Weighted, Vec<usize>) {
    static W: std::sync::OnceLock<Vec<(Weighted, Vec<usize>)>> = std::sync::OnceLock::new();
    &W.get_or_init(|| {
        (0..3)
            .map(|g| {
                let idx: Vec<usize> = (0..DIAGNOSES.len()).filter(|&i| !DIAGNOSES[i].4).collect();
                let w = Weighted::new(
                    idx.iter()
                        .map(|&i| [DIAGNOSES[i].1, DIAGNOSES[i].2, DIAGNOSES[i].3][g]),
                );
                (w, idx)
            })
            .collect()
    })[group]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_width_tables_line_up() {
        assert_eq!(KANA_FULL.chars().count(), KANA_HALF.chars().count());
        assert_eq!(VOICED.chars().count(), VOICED_BASE.chars().count());
        let name: String = "ヤマダ　ジョウ"
            .chars()
            .map(|c| half_width(c, false))
            .collect();
        assert_eq!(name, "ﾔﾏﾀﾞ ｼﾞｮｳ");
        let legacy: String = "ショウコ".chars().map(|c| half_width(c, true)).collect();
        assert_eq!(legacy, "ｼﾖｳｺ");
    }
}
