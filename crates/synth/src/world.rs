//! The fixed world the persons live in: prefectures, 二次医療圏, municipalities with real-scale
//! populations, facilities, names and code lists. Generated from the seed, shared by all shards.

use crate::rng::{Rng, Weighted};

/// (都道府県, population in thousands at the 2020 census, number of 二次医療圏).
pub const PREFECTURES: [(&str, u32, u32); 47] = [
    ("北海道", 5225, 21),
    ("青森県", 1238, 6),
    ("岩手県", 1211, 9),
    ("宮城県", 2302, 4),
    ("秋田県", 960, 8),
    ("山形県", 1068, 4),
    ("福島県", 1833, 6),
    ("茨城県", 2867, 9),
    ("栃木県", 1933, 6),
    ("群馬県", 1939, 10),
    ("埼玉県", 7345, 10),
    ("千葉県", 6284, 9),
    ("東京都", 14048, 13),
    ("神奈川県", 9237, 9),
    ("新潟県", 2201, 7),
    ("富山県", 1035, 4),
    ("石川県", 1133, 4),
    ("福井県", 767, 4),
    ("山梨県", 810, 4),
    ("長野県", 2048, 10),
    ("岐阜県", 1979, 5),
    ("静岡県", 3633, 8),
    ("愛知県", 7542, 11),
    ("三重県", 1770, 4),
    ("滋賀県", 1414, 7),
    ("京都府", 2578, 6),
    ("大阪府", 8838, 8),
    ("兵庫県", 5465, 8),
    ("奈良県", 1324, 5),
    ("和歌山県", 923, 7),
    ("鳥取県", 553, 3),
    ("島根県", 671, 7),
    ("岡山県", 1888, 5),
    ("広島県", 2800, 7),
    ("山口県", 1342, 8),
    ("徳島県", 720, 3),
    ("香川県", 950, 3),
    ("愛媛県", 1335, 6),
    ("高知県", 692, 4),
    ("福岡県", 5135, 13),
    ("佐賀県", 811, 5),
    ("長崎県", 1312, 8),
    ("熊本県", 1738, 10),
    ("大分県", 1124, 6),
    ("宮崎県", 1070, 7),
    ("鹿児島県", 1588, 9),
    ("沖縄県", 1467, 5),
];

/// Population by 5-year age band (0–4 … 95–99, 100+), millions, 2022; and the male share.
pub const AGE_BANDS: [(f64, f64); 21] = [
    (4.3, 0.512),
    (4.9, 0.512),
    (5.3, 0.512),
    (5.5, 0.513),
    (6.2, 0.512),
    (6.3, 0.510),
    (6.6, 0.507),
    (7.4, 0.506),
    (8.2, 0.505),
    (9.6, 0.504),
    (9.0, 0.502),
    (7.9, 0.498),
    (7.4, 0.493),
    (8.1, 0.485),
    (9.5, 0.468),
    (7.0, 0.442),
    (5.5, 0.405),
    (3.9, 0.350),
    (1.9, 0.270),
    (0.5, 0.190),
    (0.09, 0.120),
];

pub const SURNAMES: [&str; 64] = [
    "サトウ",
    "スズキ",
    "タカハシ",
    "タナカ",
    "ワタナベ",
    "イトウ",
    "ヤマモト",
    "ナカムラ",
    "コバヤシ",
    "カトウ",
    "ヨシダ",
    "ヤマダ",
    "ササキ",
    "ヤマグチ",
    "マツモト",
    "イノウエ",
    "キムラ",
    "ハヤシ",
    "サイトウ",
    "シミズ",
    "ヤマザキ",
    "モリ",
    "イケダ",
    "ハシモト",
    "アベ",
    "イシカワ",
    "ヤマシタ",
    "ナカジマ",
    "イシイ",
    "オガワ",
    "マエダ",
    "オカダ",
    "ハセガワ",
    "フジタ",
    "ゴトウ",
    "コンドウ",
    "ムラカミ",
    "エンドウ",
    "アオキ",
    "サカモト",
    "ニシムラ",
    "フクダ",
    "オオタ",
    "マツダ",
    "ナカガワ",
    "ナカノ",
    "ハラダ",
    "オノ",
    "タムラ",
    "タケウチ",
    "カネコ",
    "ワダ",
    "ナカヤマ",
    "イシダ",
    "ウエダ",
    "モリタ",
    "ハラ",
    "シバタ",
    "サカイ",
    "クドウ",
    "キッカワ",
    "ショウジ",
    "ジョウ",
    "チュウジョウ",
];

pub const MALE_GIVEN: [&str; 32] = [
    "ヒロシ",
    "タカシ",
    "マコト",
    "ケンイチ",
    "ショウタ",
    "ユウキ",
    "ダイスケ",
    "リョウ",
    "ハルト",
    "ソウタ",
    "ユウト",
    "タクヤ",
    "シュンスケ",
    "キョウスケ",
    "ジュン",
    "ヨシオ",
    "イサム",
    "ススム",
    "ミノル",
    "カズオ",
    "マサル",
    "シゲル",
    "アキラ",
    "ツヨシ",
    "ケンタ",
    "ヒロキ",
    "リョウタ",
    "ジュンペイ",
    "ショウヘイ",
    "テッペイ",
    "ミツル",
    "ユウスケ",
];

pub const FEMALE_GIVEN: [&str; 32] = [
    "ヨウコ",
    "ケイコ",
    "ユウコ",
    "アキコ",
    "ミホ",
    "サクラ",
    "ユイ",
    "ハナ",
    "メイ",
    "ショウコ",
    "キョウコ",
    "リョウコ",
    "チヨ",
    "ミツコ",
    "ヨシコ",
    "ユミ",
    "マイ",
    "アヤ",
    "ナツキ",
    "ユキ",
    "カズコ",
    "ヒロコ",
    "エミ",
    "マリ",
    "ナオミ",
    "チエ",
    "トモコ",
    "ジュンコ",
    "シュウコ",
    "ミユ",
    "リョウカ",
    "キョウカ",
];

/// ICD-10 codes with a weight for young (<40), middle (40–64) and old (65+) patients; a
/// `true` in the last field marks a chronic condition that persists month to month.
pub const DIAGNOSES: [(&str, f64, f64, f64, bool); 32] = [
    ("I10", 0.5, 6.0, 14.0, true),
    ("E11", 0.3, 4.0, 7.0, true),
    ("E78", 0.5, 5.0, 8.0, true),
    ("J06", 9.0, 3.0, 2.0, false),
    ("J20", 3.0, 1.5, 2.0, false),
    ("J45", 3.0, 1.5, 1.5, true),
    ("K21", 1.0, 2.5, 3.0, true),
    ("K29", 1.0, 2.0, 2.5, false),
    ("M17", 0.1, 1.5, 5.0, true),
    ("M54", 1.5, 3.0, 3.5, false),
    ("M81", 0.0, 0.8, 4.0, true),
    ("H52", 3.0, 2.0, 1.0, false),
    ("H25", 0.0, 0.5, 4.0, true),
    ("L20", 4.0, 1.0, 0.5, true),
    ("L30", 2.0, 1.0, 1.0, false),
    ("N18", 0.1, 0.8, 3.0, true),
    ("I48", 0.0, 0.5, 2.5, true),
    ("I50", 0.0, 0.3, 2.5, true),
    ("I63", 0.0, 0.3, 1.5, true),
    ("F32", 1.5, 1.5, 0.7, true),
    ("F41", 1.5, 1.2, 0.5, false),
    ("G30", 0.0, 0.02, 2.0, true),
    ("G47", 0.8, 1.5, 1.5, false),
    ("N40", 0.0, 0.6, 2.5, true),
    ("K59", 0.5, 0.8, 2.0, false),
    ("B34", 4.0, 1.0, 0.5, false),
    ("U07", 1.0, 0.6, 0.5, false),
    ("C18", 0.0, 0.2, 0.8, true),
    ("C34", 0.0, 0.15, 0.7, true),
    ("C50", 0.0, 0.4, 0.4, true),
    ("S72", 0.0, 0.05, 0.6, false),
    ("Z00", 2.0, 0.5, 0.2, false),
];

/// 診療行為コード (医科) with typical points.
pub const PROCEDURES: [(&str, u32); 12] = [
    ("111000110", 288),
    ("112007410", 73),
    ("112011010", 52),
    ("120002910", 68),
    ("160008010", 11),
    ("160000310", 27),
    ("160022510", 144),
    ("170000410", 210),
    ("120001210", 225),
    ("113001810", 87),
    ("140000610", 40),
    ("180018610", 61),
];

/// 医薬品コード (YJ-style) by condition, with the daily quantity.
pub const DRUGS: [(&str, &str, f64); 14] = [
    ("I10", "2149044F1021", 1.0),
    ("I10", "2171022F1027", 1.0),
    ("E11", "3969007F1030", 2.0),
    ("E11", "3962002F1030", 1.0),
    ("E78", "2189015F1020", 1.0),
    ("J45", "2290701G1020", 2.0),
    ("K21", "2329023F1020", 1.0),
    ("M17", "1149019F1560", 3.0),
    ("M81", "3999019F1020", 1.0),
    ("N18", "2139005F1020", 1.0),
    ("I48", "3339002F1020", 2.0),
    ("F32", "1179051F1020", 1.0),
    ("G30", "1190012F1026", 1.0),
    ("N40", "2590011F1024", 1.0),
];

/// 指定難病: (告示番号, relative prevalence). The common ones carry published-like weights;
/// the remaining numbers up to 348 decay from rare to ultra-rare.
/// 指定難病 in force from April 2025.
pub const NANBYO_DISEASES: u16 = 348;

pub const NANBYO_COMMON: [(u16, f64); 24] = [
    (6, 140.0),
    (97, 140.0),
    (49, 63.0),
    (96, 50.0),
    (18, 27.0),
    (84, 16.0),
    (13, 21.0),
    (11, 24.0),
    (63, 17.0),
    (93, 21.0),
    (222, 12.0),
    (51, 25.0),
    (56, 15.0),
    (71, 18.0),
    (85, 20.0),
    (53, 9.0),
    (2, 10.0),
    (17, 11.0),
    (5, 12.0),
    (90, 24.0),
    (66, 11.0),
    (67, 10.0),
    (300, 4.0),
    (8, 1.0),
];

pub const CARE_LEVELS: [(&str, f64); 7] = [
    ("12", 0.14),
    ("13", 0.14),
    ("21", 0.21),
    ("22", 0.17),
    ("23", 0.13),
    ("24", 0.12),
    ("25", 0.09),
];
pub const CARE_SERVICES: [(&str, u32); 6] = [
    ("11", 3000),
    ("13", 2500),
    ("15", 6000),
    ("21", 8000),
    ("43", 1200),
    ("51", 25000),
];
pub const DEMENTIA_LEVELS: [&str; 8] = ["自立", "Ⅰ", "Ⅱa", "Ⅱb", "Ⅲa", "Ⅲb", "Ⅳ", "M"];

#[derive(Debug, Clone)]
pub struct Municipality {
    pub code: String,
    pub pref: u8,
    pub area: String,
    pub population: u64,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacilityKind {
    Clinic,
    Hospital,
    DpcHospital,
}

#[derive(Debug, Clone)]
pub struct Facility {
    pub code: String,
    pub municipality: u32,
    pub kind: FacilityKind,
    pub beds: u32,
}

#[derive(Debug)]
pub struct World {
    pub municipalities: Vec<Municipality>,
    pub by_population: Weighted,
    pub facilities: Vec<Facility>,
    /// Clinics and hospitals of each municipality (indices into `facilities`).
    pub clinics_of: Vec<Vec<u32>>,
    /// Hospitals of each 二次医療圏, by the municipality index of any member.
    pub hospitals_of: Vec<Vec<u32>>,
    pub age_bands: Weighted,
    pub nanbyo: Weighted,
    pub nanbyo_codes: Vec<u16>,
    /// The run's seed, for streams drawn per person apart from the shard's.
    pub seed: u64,
}

impl World {
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed, 0x5740_7264);
        let mut municipalities = Vec::new();
        let mut area_members: Vec<Vec<u32>> = Vec::new();
        for (p, (_, pop_k, areas)) in PREFECTURES.iter().enumerate() {
            let pref = (p + 1) as u8;
            let area_weights: Vec<f64> = (0..*areas).map(|_| (rng.normal() * 0.7).exp()).collect();
            let area_total: f64 = area_weights.iter().sum();
            let mut seq = 0u32;
            for (a, aw) in area_weights.iter().enumerate() {
                let area_pop = f64::from(*pop_k) * 1000.0 * aw / area_total;
                let count = rng.range(3, 8) as usize;
                let muni_weights: Vec<f64> =
                    (0..count).map(|_| (rng.normal() * 1.6).exp()).collect();
                let muni_total: f64 = muni_weights.iter().sum();
                let mut members = Vec::new();
                for mw in muni_weights {
                    seq += 1;
                    members.push(municipalities.len() as u32);
                    municipalities.push(Municipality {
                        code: format!("{pref:02}{:03}", 100 + seq),
                        pref,
                        area: format!("{pref:02}{:02}", a + 1),
                        population: ((area_pop * mw / muni_total) as u64).max(150),
                        name: format!("{}第{}市町村", PREFECTURES[p].0, seq),
                    });
                }
                area_members.push(members);
            }
        }
        let by_population = Weighted::new(municipalities.iter().map(|m| m.population as f64));

        let mut facilities = Vec::new();
        let mut clinics_of = vec![Vec::new(); municipalities.len()];
        let mut hospitals_of = vec![Vec::new(); municipalities.len()];
        for members in &area_members {
            let mut area_hospitals = Vec::new();
            for &m in members {
                let muni = &municipalities[m as usize];
                let clinics = (muni.population / 3000).clamp(1, 40);
                let hospitals = (muni.population / 40_000).min(8);
                for i in 0..clinics + hospitals {
                    let kind = if i < clinics {
                        FacilityKind::Clinic
                    } else if rng.chance(0.4) {
                        FacilityKind::DpcHospital
                    } else {
                        FacilityKind::Hospital
                    };
                    let idx = facilities.len() as u32;
                    let beds = match kind {
                        FacilityKind::Clinic => 0,
                        _ => rng.range(50, 600) as u32,
                    };
                    facilities.push(Facility {
                        code: format!("{:02}1{:07}", muni.pref, idx),
                        municipality: m,
                        kind,
                        beds,
                    });
                    if kind == FacilityKind::Clinic {
                        clinics_of[m as usize].push(idx);
                    } else {
                        area_hospitals.push(idx);
                    }
                }
            }
            if area_hospitals.is_empty() {
                let m = members[0];
                let idx = facilities.len() as u32;
                facilities.push(Facility {
                    code: format!("{:02}1{:07}", municipalities[m as usize].pref, idx),
                    municipality: m,
                    kind: FacilityKind::DpcHospital,
                    beds: 200,
                });
                area_hospitals.push(idx);
            }
            for &m in members {
                hospitals_of[m as usize] = area_hospitals.clone();
            }
        }

        let mut nanbyo_codes = Vec::new();
        let mut nanbyo_weights = Vec::new();
        for code in 1..=NANBYO_DISEASES {
            let weight = NANBYO_COMMON
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, w)| *w)
                .unwrap_or_else(|| {
                    // Deterministic rank among the rest: from ~5 (rare) down to ~0.002 (ultra-rare).
                    let rank = f64::from((u32::from(code) * 97) % u32::from(NANBYO_DISEASES) + 1);
                    5.0 / rank.powf(1.3)
                });
            nanbyo_codes.push(code);
            nanbyo_weights.push(weight);
        }

        Self {
            by_population,
            municipalities,
            facilities,
            clinics_of,
            hospitals_of,
            age_bands: Weighted::new(AGE_BANDS.iter().map(|(w, _)| *w)),
            nanbyo: Weighted::new(nanbyo_weights),
            nanbyo_codes,
            seed,
        }
    }
}
