//! Persons and their life events over the data period: insurance coverage (the history of
//! insured numbers), marriage, the move to 後期高齢者医療 at 75, care needs, rare diseases.

use niji_pseudo::CivilDate;
use niji_pseudo::normalize::check_digit;

use crate::rng::{Rng, Weighted};
use crate::world::{AGE_BANDS, CARE_LEVELS, DIAGNOSES, FEMALE_GIVEN, MALE_GIVEN, SURNAMES, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsurerKind {
    /// 協会けんぽ
    Kyokai,
    /// 健康保険組合
    Kumiai,
    /// 国民健康保険 (市町村)
    Kokuho,
    /// 後期高齢者医療
    Kouki,
}

/// One individual insured number held over `[from, to)` (days since epoch).
#[derive(Debug, Clone)]
pub struct Coverage {
    pub from: i32,
    pub to: Option<i32>,
    pub kind: InsurerKind,
    pub insurer: String,
    pub symbol: String,
    pub number: String,
    pub branch: String,
}

/// 所得区分 of a 後期高齢者 as of 2022-10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Income {
    Low,
    Ippan1,
    Ippan2,
    Genekinami,
}

#[derive(Debug, Clone)]
pub struct Nanbyo {
    pub code: u16,
    pub stage: u8,
    pub onset: CivilDate,
    /// Fiscal year of the first certification (新規申請); renewals (更新) follow yearly.
    pub first_fy: i32,
    pub consent: String,
    pub doctor: u32,
}

#[derive(Debug, Clone)]
pub struct Shoman {
    pub group: u8,
    pub number: u16,
    pub consent: String,
    pub doctor: u32,
}

#[derive(Debug, Clone)]
pub struct Person {
    pub key: u64,
    pub sex: u8,
    pub birth: CivilDate,
    pub municipality: u32,
    pub surname: u16,
    pub given: u16,
    /// Day of marriage and the new surname.
    pub marriage: Option<(i32, u16)>,
    /// Chronological; empty for 生活保護 recipients, who hold no insured number.
    pub coverage: Vec<Coverage>,
    pub history_ref: u64,
    pub income: Income,
    pub frailty: f64,
    pub chronic: Vec<u8>,
    pub clinics: [u32; 2],
    pub care: Option<(i32, u8)>,
    pub ltc_number: String,
    pub nanbyo: Option<Nanbyo>,
    pub shoman: Option<Shoman>,
}

impl Person {
    pub fn coverage_on(&self, day: i32) -> Option<&Coverage> {
        self.coverage
            .iter()
            .rev()
            .find(|c| c.from <= day && c.to.is_none_or(|t| day < t))
    }

    pub fn surname_on(&self, day: i32) -> &'static str {
        match self.marriage {
            Some((when, new)) if day >= when => SURNAMES[new as usize],
            _ => SURNAMES[self.surname as usize],
        }
    }

    pub fn kana_name_on(&self, day: i32) -> String {
        let given = if self.sex == 1 {
            MALE_GIVEN[self.given as usize]
        } else {
            FEMALE_GIVEN[self.given as usize]
        };
        format!("{}　{}", self.surname_on(day), given)
    }

    pub fn age_on(&self, day: i32) -> i32 {
        self.birth.age_on(CivilDate::from_days_since_epoch(day))
    }
}

/// Period of the extracts, in days since epoch.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub start: i32,
    pub end: i32,
}

const SHOMAN_GROUP_SIZES: [(u16, f64); 16] = [
    (91, 15.0),
    (44, 7.0),
    (14, 3.0),
    (100, 12.0),
    (91, 28.0),
    (24, 3.0),
    (7, 6.0),
    (116, 3.0),
    (60, 2.0),
    (56, 1.0),
    (94, 6.0),
    (40, 5.0),
    (18, 3.0),
    (12, 0.3),
    (12, 0.5),
    (9, 0.2),
];

fn insurer_number(prefix: &str) -> String {
    format!("{prefix}{}", check_digit(prefix))
}

/// Individual numbers: `x * 17` apart, so no single-digit typo of one lands on another.
fn insured_number(x: u64) -> String {
    format!("{}", 100_000_000 + x * 17)
}

struct CoverageBuilder<'a> {
    key: u64,
    pref: u8,
    muni_code: &'a str,
    seq: u64,
    coverage: Vec<Coverage>,
}

impl CoverageBuilder<'_> {
    fn open(&mut self, rng: &mut Rng, from: i32, kind: InsurerKind, dependent: bool) {
        if self.seq >= 4 {
            return;
        }
        if let Some(last) = self.coverage.last_mut() {
            last.to = Some(from);
        }
        let pref = self.pref;
        let muni3 = &self.muni_code[2..];
        let (insurer, symbol) = match kind {
            InsurerKind::Kyokai => (
                insurer_number(&format!("01{pref:02}001")),
                format!("{}", 10_000_000 + rng.below(80_000_000)),
            ),
            InsurerKind::Kumiai => (
                insurer_number(&format!("06{pref:02}{:03}", 1 + rng.below(300))),
                format!("{}", 1 + rng.below(9999)),
            ),
            InsurerKind::Kokuho => {
                let symbol = if rng.chance(0.5) {
                    format!(
                        "{}{}",
                        rng.pick(&["ア", "イ", "カ", "サ"]),
                        1 + rng.below(99)
                    )
                } else {
                    format!("{}", 1 + rng.below(99))
                };
                (insurer_number(&format!("{pref:02}{muni3}")), symbol)
            }
            InsurerKind::Kouki => (
                insurer_number(&format!("39{pref:02}{muni3}")),
                String::new(),
            ),
        };
        let branch = if dependent {
            format!("{:02}", 1 + rng.below(3))
        } else {
            "00".to_string()
        };
        let number = insured_number(self.key * 5 + self.seq);
        self.seq += 1;
        self.coverage.push(Coverage {
            from,
            to: None,
            kind,
            insurer,
            symbol,
            number,
            branch,
        });
    }
}

fn employee_kind(rng: &mut Rng) -> InsurerKind {
    if rng.chance(0.55) {
        InsurerKind::Kyokai
    } else {
        InsurerKind::Kumiai
    }
}

fn day_of(d: CivilDate) -> i32 {
    d.days_since_epoch()
}

fn birthday_at(birth: CivilDate, age: i32) -> i32 {
    let day = if birth.month == 2 && birth.day == 29 {
        28
    } else {
        birth.day
    };
    CivilDate {
        year: birth.year + age,
        month: birth.month,
        day,
    }
    .days_since_epoch()
}

/// Generates person `key`; `twin` gives the twin whose birth, surname, place and family card
/// this person shares.
pub fn generate(
    rng: &mut Rng,
    world: &World,
    period: Period,
    key: u64,
    twin: Option<&Person>,
    registry: bool,
) -> Person {
    let start = CivilDate::from_days_since_epoch(period.start);
    let (birth, municipality, surname) = match twin {
        Some(t) => (t.birth, t.municipality, t.surname),
        None => {
            let band = world.age_bands.sample(rng);
            let years = if band == 20 {
                100 + rng.below(6) as i32
            } else {
                band as i32 * 5 + rng.below(5) as i32
            };
            let birth_day =
                period.start - (f64::from(years) * 365.2425) as i32 - rng.below(365) as i32;
            let municipality = world.by_population.sample(rng) as u32;
            let surname = surname_weights().sample(rng) as u16;
            (
                CivilDate::from_days_since_epoch(birth_day),
                municipality,
                surname,
            )
        }
    };
    let age = birth.age_on(start);
    let band = ((age / 5) as usize).min(20);
    let sex = if rng.chance(AGE_BANDS[band].1) { 1 } else { 2 };
    let given = rng.below(MALE_GIVEN.len().min(FEMALE_GIVEN.len()) as u64) as u16;
    let muni = &world.municipalities[municipality as usize];

    let mut cov = CoverageBuilder {
        key,
        pref: muni.pref,
        muni_code: &muni.code,
        seq: 0,
        coverage: Vec::new(),
    };
    let welfare = rng.chance(0.016);
    let mut marriage = None;
    if !welfare {
        let seventy_five = birthday_at(birth, 75);
        let adult_from = birthday_at(birth, 22);
        let earliest = day_of(CivilDate {
            year: 2008,
            month: 4,
            day: 1,
        });
        if age < 20 {
            // Dependants on a parent's card: twins share it, with their own 枝番.
            let parent_kind = if rng.chance(0.3) {
                InsurerKind::Kokuho
            } else {
                employee_kind(rng)
            };
            cov.open(rng, day_of(birth).max(earliest), parent_kind, true);
            if let (Some(tc), Some(c)) = (
                twin.and_then(|t| t.coverage.first()),
                cov.coverage.last_mut(),
            ) {
                c.insurer = tc.insurer.clone();
                c.symbol = tc.symbol.clone();
                c.number = tc.number.clone();
                c.kind = tc.kind;
                c.branch = format!("{:02}", tc.branch.parse::<u32>().unwrap_or(1) + 1);
            }
        } else {
            let kind = if age >= 75 {
                InsurerKind::Kokuho
            } else if age >= 65 {
                if rng.chance(0.75) {
                    InsurerKind::Kokuho
                } else {
                    employee_kind(rng)
                }
            } else if rng.chance(0.25) {
                InsurerKind::Kokuho
            } else {
                employee_kind(rng)
            };
            let first_from = adult_from.max(earliest) + rng.below(400) as i32;
            if rng.chance(0.5) && first_from < period.start - 800 {
                let earlier = employee_kind(rng);
                cov.open(rng, first_from, earlier, false);
                let next =
                    first_from + rng.range(200, i64::from(period.start - first_from - 100)) as i32;
                let dependent = sex == 2 && rng.chance(0.2);
                cov.open(rng, next, kind, dependent);
            } else {
                let dependent = sex == 2 && age < 65 && rng.chance(0.2);
                cov.open(rng, first_from.min(period.start - 30), kind, dependent);
            }
            if age >= 75 {
                cov.open(
                    rng,
                    seventy_five
                        .min(period.start - 1)
                        .max(cov.coverage[0].from + 1),
                    InsurerKind::Kouki,
                    false,
                );
            }
        }
        // Events inside the period, in date order.
        let years = f64::from(period.end - period.start) / 365.25;
        let mut events: Vec<(i32, u8)> = Vec::new();
        if age < 75 && seventy_five < period.end {
            events.push((seventy_five, 0));
        }
        let employed = cov
            .coverage
            .last()
            .is_some_and(|c| matches!(c.kind, InsurerKind::Kyokai | InsurerKind::Kumiai));
        if employed && (22..65).contains(&age) && rng.chance(0.05 * years) {
            events.push((
                period.start + rng.below((period.end - period.start) as u64) as i32,
                1,
            ));
        }
        if sex == 2 && (22..41).contains(&age) && rng.chance(0.03 * years) {
            events.push((
                period.start + rng.below((period.end - period.start) as u64) as i32,
                2,
            ));
        }
        if age < 20 && adult_from > period.start && adult_from < period.end && rng.chance(0.3) {
            events.push((adult_from, 1));
        }
        events.sort_unstable();
        for (day, event) in events {
            match event {
                0 => cov.open(rng, day, InsurerKind::Kouki, false),
                1 => {
                    let kind = if rng.chance(0.2) {
                        InsurerKind::Kokuho
                    } else {
                        employee_kind(rng)
                    };
                    cov.open(rng, day, kind, false);
                }
                _ => {
                    let mut new = surname_weights().sample(rng) as u16;
                    if new == surname {
                        new = (new + 1) % SURNAMES.len() as u16;
                    }
                    marriage = Some((day, new));
                    if rng.chance(0.6) {
                        let kind = employee_kind(rng);
                        cov.open(rng, day, kind, true);
                    }
                }
            }
        }
    }

    let income = match rng.f64() {
        x if x < 0.30 => Income::Low,
        x if x < 0.73 => Income::Ippan1,
        x if x < 0.93 => Income::Ippan2,
        _ => Income::Genekinami,
    };
    let age_group = if age < 40 {
        0
    } else if age < 65 {
        1
    } else {
        2
    };
    let chronic = DIAGNOSES
        .iter()
        .enumerate()
        .filter(|(_, d)| d.4)
        .filter(|(_, d)| rng.chance([d.1, d.2, d.3][age_group] / 45.0))
        .map(|(i, _)| i as u8)
        .collect();
    let clinics_here = &world.clinics_of[municipality as usize];
    let fallback = &world.hospitals_of[municipality as usize];
    let pick_clinic = |rng: &mut Rng| {
        *rng.pick(if clinics_here.is_empty() {
            fallback
        } else {
            clinics_here
        })
    };
    let clinics = [pick_clinic(rng), pick_clinic(rng)];

    let care_rate = match age {
        ..65 => 0.0,
        65..75 => 0.03,
        75..85 => 0.13,
        _ => 0.45,
    };
    let care = rng.chance(care_rate).then(|| {
        let from = period.start - 400 + rng.below((period.end - period.start + 400) as u64) as i32;
        (
            from,
            Weighted::new(CARE_LEVELS.iter().map(|c| c.1)).sample(rng) as u8,
        )
    });
    // In a registry-only delivery every person is a certified patient.
    let nanbyo = (registry || (age >= 10 && rng.chance(0.0085))).then(|| {
        let code = world.nanbyo_codes[world.nanbyo.sample(rng)];
        let stage = 1 + rng.below(5) as u8;
        let onset_year = start.year - rng.range(0, 25.min(i64::from(age))) as i32;
        let onset_month = 1 + rng.below(12) as u32;
        let consent = format!("{:010}", 1_000_000_000 + key);
        let doctor = muni.pref as u32 * 100_000 + rng.below(2000) as u32;
        // Drawn apart from the person's stream, so that adding them changed no other draw.
        let mut own = Rng::new(world.seed ^ crate::rng::splitmix64(key), 0x4e41_4e42);
        let first_period_fy = if start.month >= 4 {
            start.year
        } else {
            start.year - 1
        };
        let period_years = ((period.end - period.start) / 365).max(1);
        // About a third certified within the period (新規), onset within the year before.
        let first_fy = if own.chance(0.35) {
            first_period_fy + own.below(period_years as u64) as i32
        } else {
            first_period_fy - 1 - own.below(8) as i32
        };
        let onset = CivilDate {
            year: onset_year.min(first_fy),
            month: onset_month,
            day: 1,
        };
        Nanbyo {
            code,
            stage,
            onset,
            first_fy,
            consent,
            doctor,
        }
    });
    let shoman = (!registry && age < 20 && rng.chance(0.0012)).then(|| {
        let groups = Weighted::new(SHOMAN_GROUP_SIZES.iter().map(|g| g.1));
        let group = groups.sample(rng);
        Shoman {
            group: group as u8 + 1,
            number: 1 + rng.below(u64::from(SHOMAN_GROUP_SIZES[group].0)) as u16,
            consent: format!("{:010}", 2_000_000_000 + key),
            doctor: muni.pref as u32 * 100_000 + rng.below(2000) as u32,
        }
    });
    Person {
        key,
        sex,
        birth,
        municipality,
        surname,
        given,
        marriage,
        coverage: cov.coverage,
        history_ref: crate::rng::splitmix64(key ^ 0x4849_5354),
        income,
        frailty: (rng.normal() * 0.7 - 0.245).exp(),
        chronic,
        clinics,
        care,
        ltc_number: format!("{:010}", 3_000_000_000u64 + key),
        nanbyo,
        shoman,
    }
}

fn surname_weights() -> &'static Weighted {
    static WEIGHTS: std::sync::OnceLock<Weighted> = std::sync::OnceLock::new();
    WEIGHTS.get_or_init(|| Weighted::new((0..SURNAMES.len()).map(|i| 1.0 / (i as f64 + 3.0))))
}
