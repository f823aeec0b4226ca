//! Checkups, long-term care claims and certifications, and the rare-disease registries.

use super::*;

impl ShardGen<'_> {
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

    pub(super) fn checkup(&mut self, p: &Person, day: i32, age: i32) {
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
    pub(super) fn contact(&mut self, p: &Person) -> (String, String) {
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
    pub(super) fn area_hospital(&mut self, p: &Person) -> String {
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
            // The course between renewals, drawn apart from the shard's stream.
            let mut course =
                crate::rng::Rng::new(self.world.seed ^ crate::rng::splitmix64(p.key), 0x434f_5552);
            let mut stage = n.stage;
            for fy in first_fy.max(n.first_fy)..=last_fy {
                if fy > first_fy.max(n.first_fy) && !self.rng.chance(0.9) {
                    break;
                }
                if fy > n.first_fy {
                    // Most designated diseases progress: a stage up more often than down.
                    match course.f64() {
                        x if x < 0.14 => stage = (stage + 1).min(5),
                        x if x < 0.20 => stage = stage.saturating_sub(1).max(1),
                        _ => {}
                    }
                }
                let application = if fy == n.first_fy { 1 } else { 2 };
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
                    .push(application)
                    .push(n.code)
                    .push(n.onset.year as u32 * 100 + n.onset.month)
                    .push(stage)
                    .push(u8::from(stage >= 3))
                    .push(format!("{:.0}", score.clamp(0.0, 100.0)))
                    .push(format!("D{:07}", n.doctor))
                    .push(facility);
                self.identity(p, day, BirthStyle::Mixed, 0.03);
                let (address, phone) = self.contact(p);
                self.sink.row.push(address).push(phone).push(&muni);
                self.sink.emit(NANBYO, &mut self.rng, &key, Some(p.key));
                score += 2.0 + 3.0 * f64::from(stage) / 5.0 + self.rng.normal() * 3.0;
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
