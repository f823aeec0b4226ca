//! Dates as they appear in extracts: 和暦 `元号コード+YYMMDD` (receipts), 西暦 `YYYYMMDD`,
//! `YYYY-MM-DD`, `YYYY/MM/DD`, and era-letter forms such as `S55.04.12` or `H1.1.8`.
//! All are brought to one form, a proleptic Gregorian [`CivilDate`].

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("empty date")]
    Empty,
    #[error("unrecognised date format")]
    Format,
    #[error("unknown era code")]
    Era,
    #[error("no such calendar day")]
    Day,
    #[error("date lies outside its era")]
    OutsideEra,
}

/// A calendar date; ordering is chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

/// Japanese eras with their receipt code, letter and first day. The last day of each is the
/// day before the next one starts.
const ERAS: [(u8, char, &str, CivilDate); 5] = [
    (
        1,
        'M',
        "明治",
        CivilDate {
            year: 1868,
            month: 10,
            day: 23,
        },
    ),
    (
        2,
        'T',
        "大正",
        CivilDate {
            year: 1912,
            month: 7,
            day: 30,
        },
    ),
    (
        3,
        'S',
        "昭和",
        CivilDate {
            year: 1926,
            month: 12,
            day: 25,
        },
    ),
    (
        4,
        'H',
        "平成",
        CivilDate {
            year: 1989,
            month: 1,
            day: 8,
        },
    ),
    (
        5,
        'R',
        "令和",
        CivilDate {
            year: 2019,
            month: 5,
            day: 1,
        },
    ),
];

impl CivilDate {
    pub fn new(year: i32, month: u32, day: u32) -> Result<Self, DateError> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(DateError::Day);
        }
        Ok(Self { year, month, day })
    }

    /// Days since 1970-01-01 (Arrow `Date32`), after H. Hinnant's `days_from_civil`.
    pub fn days_since_epoch(self) -> i32 {
        let y = if self.month <= 2 {
            self.year - 1
        } else {
            self.year
        };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.month as i32;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.day as i32 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Today in UTC.
    pub fn today() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        Self::from_days_since_epoch(secs.div_euclid(86_400) as i32)
    }

    /// Inverse of [`Self::days_since_epoch`].
    pub fn from_days_since_epoch(days: i32) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i32::from(month <= 2);
        Self { year, month, day }
    }

    /// The one canonical text form, `YYYYMMDD`, used as identifier input.
    pub fn canonical(self) -> String {
        String::from_utf8_lossy(&self.canonical_bytes()).into_owned()
    }

    /// [`Self::canonical`] without allocating (years 0–9999).
    pub fn canonical_bytes(self) -> [u8; 8] {
        let y = self.year.clamp(0, 9999) as u32;
        let digit = |v: u32| b'0' + (v % 10) as u8;
        [
            digit(y / 1000),
            digit(y / 100),
            digit(y / 10),
            digit(y),
            digit(self.month / 10),
            digit(self.month),
            digit(self.day / 10),
            digit(self.day),
        ]
    }

    /// 和暦 as on receipts: era code followed by YYMMDD, e.g. `3550412` for 昭和55年4月12日.
    pub fn to_wareki7(self) -> Option<String> {
        let (code, _, _, start) = ERAS.iter().rev().find(|(_, _, _, start)| *start <= self)?;
        let era_year = self.year - start.year + 1;
        Some(format!(
            "{code}{era_year:02}{:02}{:02}",
            self.month, self.day
        ))
    }

    /// Whole years of age on `on`.
    pub fn age_on(self, on: CivilDate) -> i32 {
        let had_birthday = (on.month, on.day) >= (self.month, self.day);
        on.year - self.year - i32::from(!had_birthday)
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn era_date(era_index: usize, era_year: u32, month: u32, day: u32) -> Result<CivilDate, DateError> {
    let start = ERAS[era_index].3;
    if era_year == 0 {
        return Err(DateError::OutsideEra);
    }
    let date = CivilDate::new(start.year + era_year as i32 - 1, month, day)?;
    let next_start = ERAS.get(era_index + 1).map(|e| e.3);
    if date < start || next_start.is_some_and(|next| date >= next) {
        return Err(DateError::OutsideEra);
    }
    Ok(date)
}

fn ascii_digits(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses any of the accepted date forms. Full-width digits and separators are accepted
/// (the caller's field text is NFKC-folded here for that).
pub fn parse_date(raw: &str) -> Result<CivilDate, DateError> {
    let folded = crate::normalize::nfkc(raw.trim());
    let s: &str = &folded;
    if s.is_empty() {
        return Err(DateError::Empty);
    }
    let bytes = s.as_bytes();
    if bytes.iter().all(u8::is_ascii_digit) {
        return match bytes.len() {
            7 => {
                let code = bytes[0] - b'0';
                let era = ERAS
                    .iter()
                    .position(|e| e.0 == code)
                    .ok_or(DateError::Era)?;
                let n = |r: std::ops::Range<usize>| ascii_digits(&s[r]).ok_or(DateError::Format);
                era_date(era, n(1..3)?, n(3..5)?, n(5..7)?)
            }
            8 => {
                let n = |r: std::ops::Range<usize>| ascii_digits(&s[r]).ok_or(DateError::Format);
                CivilDate::new(n(0..4)? as i32, n(4..6)?, n(6..8)?)
            }
            _ => Err(DateError::Format),
        };
    }
    // Era-prefixed forms: a letter (S55.4.12) or a name (昭和55年4月12日); 元年 is year 1.
    let era = ERAS.iter().position(|(_, letter, name, _)| {
        s.starts_with(*letter) || s.starts_with(letter.to_ascii_lowercase()) || s.starts_with(*name)
    });
    let (era, rest) = match era {
        Some(i) => {
            let (_, letter, name, _) = ERAS[i];
            let rest = s
                .strip_prefix(name)
                .unwrap_or_else(|| &s[letter.len_utf8()..]);
            (Some(i), rest.replacen("元", "1", 1))
        }
        None => (None, s.to_string()),
    };
    let parts: Vec<&str> = rest
        .split(['.', '-', '/', '年', '月', '日'])
        .filter(|p| !p.is_empty())
        .collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(DateError::Format);
    };
    let (y, m, d) = (
        ascii_digits(y).ok_or(DateError::Format)?,
        ascii_digits(m).ok_or(DateError::Format)?,
        ascii_digits(d).ok_or(DateError::Format)?,
    );
    match era {
        Some(i) => era_date(i, y, m, d),
        None if y >= 1000 => CivilDate::new(y as i32, m, d),
        None => Err(DateError::Format),
    }
}

/// `YYYYMM` (診療年月 and similar) to the first day of that month.
pub fn parse_year_month(raw: &str) -> Result<CivilDate, DateError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(DateError::Empty);
    }
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Format);
    }
    let year: i32 = s[0..4].parse().map_err(|_| DateError::Format)?;
    let month: u32 = s[4..6].parse().map_err(|_| DateError::Format)?;
    CivilDate::new(year, month, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> CivilDate {
        CivilDate::new(y, m, day).unwrap()
    }

    #[test]
    fn wareki_receipt_codes() {
        assert_eq!(parse_date("3550412"), Ok(d(1980, 4, 12)));
        assert_eq!(parse_date("4010108"), Ok(d(1989, 1, 8)));
        assert_eq!(parse_date("3640107"), Ok(d(1989, 1, 7)));
        assert_eq!(parse_date("5010501"), Ok(d(2019, 5, 1)));
        assert_eq!(parse_date("4310430"), Ok(d(2019, 4, 30)));
        assert_eq!(parse_date("1450101"), Ok(d(1912, 1, 1)));
    }

    #[test]
    fn wareki_outside_era_is_refused() {
        // 平成31年5月1日 never existed: 令和 began that day.
        assert_eq!(parse_date("4310501"), Err(DateError::OutsideEra));
        // 昭和64年1月8日 is 平成元年.
        assert_eq!(parse_date("3640108"), Err(DateError::OutsideEra));
        assert_eq!(parse_date("3000101"), Err(DateError::OutsideEra));
        assert_eq!(parse_date("9550412"), Err(DateError::Era));
        assert_eq!(parse_date("3550230"), Err(DateError::Day));
    }

    #[test]
    fn western_forms_agree() {
        for s in [
            "19800412",
            "1980-04-12",
            "1980/4/12",
            "１９８０－０４－１２",
            "S55.4.12",
            "昭和55年4月12日",
        ] {
            assert_eq!(parse_date(s), Ok(d(1980, 4, 12)), "{s}");
        }
        assert_eq!(parse_date("平成元年1月8日"), Ok(d(1989, 1, 8)));
        assert_eq!(parse_date("h1.1.8"), Ok(d(1989, 1, 8)));
        assert_eq!(parse_date("20230229"), Err(DateError::Day));
        assert_eq!(parse_date("20240229"), Ok(d(2024, 2, 29)));
        assert_eq!(parse_date(""), Err(DateError::Empty));
        assert_eq!(parse_date("12/04/80"), Err(DateError::Format));
    }

    #[test]
    fn epoch_days_round_trip() {
        assert_eq!(d(1970, 1, 1).days_since_epoch(), 0);
        assert_eq!(d(2000, 3, 1).days_since_epoch(), 11_017);
        assert_eq!(d(1900, 1, 1).days_since_epoch(), -25_567);
        for days in (-40_000..40_000).step_by(37) {
            assert_eq!(
                CivilDate::from_days_since_epoch(days).days_since_epoch(),
                days
            );
        }
    }

    #[test]
    fn wareki_rendering_round_trips() {
        for days in (-30_000..20_000).step_by(53) {
            let date = CivilDate::from_days_since_epoch(days);
            let w = date.to_wareki7().unwrap();
            assert_eq!(parse_date(&w), Ok(date), "{w}");
        }
    }

    #[test]
    fn ages() {
        assert_eq!(d(1947, 10, 1).age_on(d(2022, 9, 30)), 74);
        assert_eq!(d(1947, 10, 1).age_on(d(2022, 10, 1)), 75);
    }

    #[test]
    fn year_month() {
        assert_eq!(parse_year_month("202210"), Ok(d(2022, 10, 1)));
        assert_eq!(parse_year_month("202213"), Err(DateError::Day));
        assert_eq!(parse_year_month("2022-10"), Err(DateError::Format));
    }
}
