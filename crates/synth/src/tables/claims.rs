//! Claims: NDB receipts and their details, DPC stays, copayments.

use super::*;

impl ShardGen<'_> {
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
    pub(super) fn receipt(
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

    pub(super) fn details(&mut self, p: &Person, receipt_key: &str, age: i32, days: u32) {
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

    pub(super) fn dpc_stay(&mut self, p: &Person, hospital: u32, admit: i32, stay: i32) {
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
}

/// 負担割合 and the 所得区分 shown on 後期高齢者 receipts (一般 splits into Ⅰ and Ⅱ from 2022-10).
pub(super) fn copay(p: &Person, age: i32, kouki: bool, ym: u32) -> (u8, &'static str) {
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

pub(super) fn acute_weights(group: usize) -> &'static (Weighted, Vec<usize>) {
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
