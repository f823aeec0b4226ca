//! The Japanese working-day calendar that application-review phases count their due dates in.
//!
//! A day is not a working day when it is a weekend, a national holiday under 国民の祝日に関する法律
//! (with 振替休日 and 国民の休日) or inside the year-end closure 年末年始 (December 29 to
//! January 3). Holidays follow the law as amended up to the 2021 Olympic moves and are computed
//! for 1980–2099 only, the range of the equinox approximation; outside it only weekends and the
//! year-end closure apply.

use niji_pseudo::CivilDate;

/// Why a day is not a working day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayOff {
    Weekend,
    Holiday(&'static str),
    YearEnd,
}

const FIRST_YEAR: i32 = 1980;
const LAST_YEAR: i32 = 2099;
const SATURDAY: u32 = 5;
const SUNDAY: u32 = 6;

/// Day of the week, 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday).
fn weekday(d: CivilDate) -> u32 {
    (d.days_since_epoch() + 3).rem_euclid(7) as u32
}

fn shift(d: CivilDate, days: i32) -> CivilDate {
    CivilDate::from_days_since_epoch(d.days_since_epoch() + days)
}

/// Day of the month of the `n`th Monday (Happy Monday holidays).
fn nth_monday(year: i32, month: u32, n: u32) -> u32 {
    let first = weekday(CivilDate {
        year,
        month,
        day: 1,
    });
    1 + (7 - first) % 7 + 7 * (n - 1)
}

/// Equinox day by the usual approximation for 1980–2099, in integer millionths so that
/// values such as 22.999 are not rounded up by floating point. `base` is 20.8431 (March) or
/// 23.2488 (September) in millionths; `year` must not be before 1980.
fn equinox_day(year: i32, base: i64) -> u32 {
    let t = i64::from(year - FIRST_YEAR);
    ((base + 242_194 * t) / 1_000_000 - t / 4) as u32
}

/// The 国民の祝日 of a year (and the one-off days special laws treated as such), as
/// (month, day) and name; substitute and sandwiched days are derived in [`national_holiday`].
fn statutory_holidays(y: i32) -> impl Iterator<Item = ((u32, u32), &'static str)> {
    let on = |cond: bool, month: u32, day: u32| cond.then_some((month, day));
    let coming_of_age = if y < 2000 { 15 } else { nth_monday(y, 1, 2) };
    let emperor = match y {
        ..=1988 => Some((4, 29)),
        1989..=2018 => Some((12, 23)),
        2019 => None,
        _ => Some((2, 23)),
    };
    let april_29 = if y < 2007 {
        "みどりの日"
    } else {
        "昭和の日"
    };
    let marine = match y {
        ..=1995 => None,
        1996..=2002 => Some((7, 20)),
        2020 => Some((7, 23)),
        2021 => Some((7, 22)),
        _ => Some((7, nth_monday(y, 7, 3))),
    };
    let mountain = match y {
        ..=2015 => None,
        2020 => Some((8, 10)),
        2021 => Some((8, 8)),
        _ => Some((8, 11)),
    };
    let aged = if y < 2003 { 15 } else { nth_monday(y, 9, 3) };
    let sports = match y {
        ..=1999 => (10, 10),
        2020 => (7, 24),
        2021 => (7, 23),
        _ => (10, nth_monday(y, 10, 2)),
    };
    let sports_name = if y < 2020 {
        "体育の日"
    } else {
        "スポーツの日"
    };
    [
        (Some((1, 1)), "元日"),
        (Some((1, coming_of_age)), "成人の日"),
        (Some((2, 11)), "建国記念の日"),
        (emperor, "天皇誕生日"),
        (Some((3, equinox_day(y, 20_843_100))), "春分の日"),
        (on(y >= 1989, 4, 29), april_29),
        (Some((5, 3)), "憲法記念日"),
        (on(y >= 2007, 5, 4), "みどりの日"),
        (Some((5, 5)), "こどもの日"),
        (marine, "海の日"),
        (mountain, "山の日"),
        (Some((9, aged)), "敬老の日"),
        (Some((9, equinox_day(y, 23_248_800))), "秋分の日"),
        (Some(sports), sports_name),
        (Some((11, 3)), "文化の日"),
        (Some((11, 23)), "勤労感謝の日"),
        (on(y == 1989, 2, 24), "昭和天皇の大喪の礼"),
        (on(y == 1990, 11, 12), "即位礼正殿の儀"),
        (on(y == 1993, 6, 9), "皇太子徳仁親王の結婚の儀"),
        (on(y == 2019, 5, 1), "天皇の即位の日"),
        (on(y == 2019, 10, 22), "即位礼正殿の儀の行われる日"),
    ]
    .into_iter()
    .filter_map(|(md, name)| md.map(|md| (md, name)))
}

fn statutory_holiday(d: CivilDate) -> Option<&'static str> {
    if !(FIRST_YEAR..=LAST_YEAR).contains(&d.year) {
        return None;
    }
    statutory_holidays(d.year)
        .find(|&(md, _)| md == (d.month, d.day))
        .map(|(_, name)| name)
}

/// The Japanese name of the national holiday on `d`, including 振替休日 and 国民の休日.
pub fn national_holiday(d: CivilDate) -> Option<&'static str> {
    if let Some(name) = statutory_holiday(d) {
        return Some(name);
    }
    if !(FIRST_YEAR..=LAST_YEAR).contains(&d.year) {
        return None;
    }
    let is_statutory = |offset: i32| statutory_holiday(shift(d, offset)).is_some();
    // 振替休日: since 2007 the first non-holiday after a Sunday holiday (so a run of
    // holidays pushes it on); before, only the Monday right after.
    if d.year >= 2007 {
        let mut back = -1;
        while is_statutory(back) {
            if weekday(shift(d, back)) == SUNDAY {
                return Some("振替休日");
            }
            back -= 1;
        }
    } else if weekday(shift(d, -1)) == SUNDAY && is_statutory(-1) {
        return Some("振替休日");
    }
    // 国民の休日 (from 1986): a day between two 祝日; until 2006 the law excluded Sundays.
    let rule_applies = d.year >= 2007 || (d.year >= 1986 && weekday(d) != SUNDAY);
    if rule_applies && is_statutory(-1) && is_statutory(1) {
        return Some("国民の休日");
    }
    None
}

/// Why `d` is not a working day, or `None` for a working day. When several reasons hold, a
/// national holiday is reported first (so 1/1 is 元日, a Sunday 祝日 is its holiday), then the
/// year-end closure, then the weekend.
pub fn day_off(d: CivilDate) -> Option<DayOff> {
    if let Some(name) = national_holiday(d) {
        return Some(DayOff::Holiday(name));
    }
    if (d.month == 12 && d.day >= 29) || (d.month == 1 && d.day <= 3) {
        return Some(DayOff::YearEnd);
    }
    if matches!(weekday(d), SATURDAY | SUNDAY) {
        return Some(DayOff::Weekend);
    }
    None
}

pub fn is_working_day(d: CivilDate) -> bool {
    day_off(d).is_none()
}

/// The date `n` working days after `start` (start itself not counted); n = 0 gives start.
/// Steps a day at a time, which suits review periods of days to months.
pub fn add_working_days(start: CivilDate, n: u32) -> CivilDate {
    let mut day = start;
    let mut left = n;
    while left > 0 {
        day = shift(day, 1);
        if is_working_day(day) {
            left -= 1;
        }
    }
    day
}

/// Working days in (from, to]: 0 when to <= from.
pub fn working_days_between(from: CivilDate, to: CivilDate) -> i64 {
    let (first, last) = (from.days_since_epoch() + 1, to.days_since_epoch());
    (first..=last)
        .filter(|&days| is_working_day(CivilDate::from_days_since_epoch(days)))
        .count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> CivilDate {
        CivilDate::new(y, m, day).unwrap()
    }

    fn holidays_of(year: i32) -> Vec<(String, &'static str)> {
        let start = d(year, 1, 1).days_since_epoch();
        let end = d(year, 12, 31).days_since_epoch();
        (start..=end)
            .map(CivilDate::from_days_since_epoch)
            .filter_map(|day| national_holiday(day).map(|name| (day.to_string(), name)))
            .collect()
    }

    #[test]
    fn weekdays() {
        assert_eq!(weekday(d(1970, 1, 1)), 3);
        assert_eq!(weekday(d(2026, 5, 3)), SUNDAY);
        assert_eq!(weekday(d(2026, 12, 25)), 4);
        assert_eq!(weekday(d(2026, 12, 28)), 0);
    }

    #[test]
    fn holidays_2026() {
        let expected = [
            ("2026-01-01", "元日"),
            ("2026-01-12", "成人の日"),
            ("2026-02-11", "建国記念の日"),
            ("2026-02-23", "天皇誕生日"),
            ("2026-03-20", "春分の日"),
            ("2026-04-29", "昭和の日"),
            ("2026-05-03", "憲法記念日"),
            ("2026-05-04", "みどりの日"),
            ("2026-05-05", "こどもの日"),
            ("2026-05-06", "振替休日"),
            ("2026-07-20", "海の日"),
            ("2026-08-11", "山の日"),
            ("2026-09-21", "敬老の日"),
            ("2026-09-22", "国民の休日"),
            ("2026-09-23", "秋分の日"),
            ("2026-10-12", "スポーツの日"),
            ("2026-11-03", "文化の日"),
            ("2026-11-23", "勤労感謝の日"),
        ];
        let expected: Vec<(String, &str)> =
            expected.iter().map(|&(s, n)| (s.to_string(), n)).collect();
        assert_eq!(holidays_of(2026), expected);
    }

    #[test]
    fn substitutes_and_equinoxes_2025() {
        assert_eq!(national_holiday(d(2025, 2, 23)), Some("天皇誕生日"));
        assert_eq!(national_holiday(d(2025, 2, 24)), Some("振替休日"));
        assert_eq!(national_holiday(d(2025, 11, 24)), Some("振替休日"));
        assert_eq!(national_holiday(d(2025, 3, 20)), Some("春分の日"));
        assert_eq!(national_holiday(d(2025, 9, 23)), Some("秋分の日"));
        assert_eq!(national_holiday(d(2025, 9, 22)), None);
        assert_eq!(holidays_of(2025).len(), 19);
    }

    #[test]
    fn special_years() {
        assert_eq!(national_holiday(d(2019, 4, 30)), Some("国民の休日"));
        assert_eq!(national_holiday(d(2019, 5, 1)), Some("天皇の即位の日"));
        assert_eq!(national_holiday(d(2019, 5, 2)), Some("国民の休日"));
        assert_eq!(national_holiday(d(2019, 5, 6)), Some("振替休日"));
        assert_eq!(national_holiday(d(2019, 12, 23)), None);
        assert_eq!(national_holiday(d(2018, 12, 23)), Some("天皇誕生日"));
        assert_eq!(national_holiday(d(2018, 12, 24)), Some("振替休日"));
        assert_eq!(national_holiday(d(2020, 7, 23)), Some("海の日"));
        assert_eq!(national_holiday(d(2020, 7, 24)), Some("スポーツの日"));
        assert_eq!(national_holiday(d(2020, 8, 10)), Some("山の日"));
        assert_eq!(national_holiday(d(2020, 8, 11)), None);
        assert_eq!(national_holiday(d(2020, 10, 12)), None);
        assert_eq!(national_holiday(d(2021, 8, 9)), Some("振替休日"));
        assert_eq!(national_holiday(d(2015, 9, 22)), Some("国民の休日"));
        assert_eq!(national_holiday(d(2019, 10, 14)), Some("体育の日"));
    }

    #[test]
    fn outside_range_only_weekends_and_year_end() {
        assert_eq!(national_holiday(d(2100, 1, 1)), None);
        assert_eq!(day_off(d(2100, 1, 1)), Some(DayOff::YearEnd));
        assert_eq!(national_holiday(d(1979, 5, 3)), None);
    }

    #[test]
    fn day_off_reasons() {
        assert_eq!(day_off(d(2026, 1, 1)), Some(DayOff::Holiday("元日")));
        assert_eq!(day_off(d(2026, 1, 2)), Some(DayOff::YearEnd));
        assert_eq!(day_off(d(2026, 12, 31)), Some(DayOff::YearEnd));
        assert_eq!(day_off(d(2026, 12, 26)), Some(DayOff::Weekend));
        assert_eq!(day_off(d(2026, 12, 27)), Some(DayOff::Weekend));
        assert_eq!(day_off(d(2026, 5, 3)), Some(DayOff::Holiday("憲法記念日")));
        assert_eq!(day_off(d(2026, 12, 28)), None);
        assert!(is_working_day(d(2026, 12, 25)));
        assert!(!is_working_day(d(2026, 5, 6)));
    }

    #[test]
    fn adding_across_year_end() {
        let start = d(2026, 12, 25);
        assert_eq!(add_working_days(start, 0), start);
        assert_eq!(add_working_days(start, 1), d(2026, 12, 28));
        assert_eq!(add_working_days(start, 2), d(2027, 1, 4));
        assert_eq!(add_working_days(start, 3), d(2027, 1, 5));
        // Golden Week 2026: Thu 4/30, Fri 5/1 work; 5/2–5/6 off.
        assert_eq!(add_working_days(d(2026, 4, 30), 2), d(2026, 5, 7));
    }

    #[test]
    fn counting_between() {
        assert_eq!(working_days_between(d(2026, 12, 25), d(2027, 1, 4)), 2);
        assert_eq!(working_days_between(d(2026, 12, 25), d(2026, 12, 25)), 0);
        assert_eq!(working_days_between(d(2027, 1, 4), d(2026, 12, 25)), 0);
        // Mon 2026-06-01 to Mon 2026-06-08: Tue–Fri and Mon, the weekend not counted.
        assert_eq!(working_days_between(d(2026, 6, 1), d(2026, 6, 8)), 5);
        for n in [0, 1, 7, 20, 60] {
            let end = add_working_days(d(2026, 3, 2), n);
            assert_eq!(working_days_between(d(2026, 3, 2), end), i64::from(n));
        }
    }
}
