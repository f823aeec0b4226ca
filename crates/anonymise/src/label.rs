//! A quasi-identifier's value as read from the query, and what it reads at each level of its
//! hierarchy. Labels are computed from the value alone, so a level's groups are the same in
//! every build and in every check.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use niji_catalog::anonymisation::{Level, SUPPRESSED_LABEL};

use crate::AnonymiseError;

/// One value of a quasi-identifier column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Raw {
    Null,
    /// Days since 1970-01-01.
    Date(i32),
    Int(i64),
    Text(String),
}

/// The column's values, row by row.
pub(crate) fn raw_values(name: &str, array: &ArrayRef) -> Result<Vec<Raw>, AnonymiseError> {
    let n = array.len();
    let nulls = |i: usize| array.is_null(i);
    Ok(match array.data_type() {
        DataType::Date32 => {
            let a = array.as_primitive::<arrow::datatypes::Date32Type>();
            (0..n)
                .map(|i| {
                    if nulls(i) {
                        Raw::Null
                    } else {
                        Raw::Date(a.value(i))
                    }
                })
                .collect()
        }
        t if t.is_integer() => {
            // Not the safe cast, which would make an unsigned value beyond i64 missing.
            let options = arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            let cast = arrow::compute::cast_with_options(array, &DataType::Int64, &options)
                .map_err(|source| AnonymiseError::Column {
                    column: name.to_string(),
                    source,
                })?;
            let a = cast.as_primitive::<Int64Type>();
            (0..n)
                .map(|i| {
                    if nulls(i) {
                        Raw::Null
                    } else {
                        Raw::Int(a.value(i))
                    }
                })
                .collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let cast = arrow::compute::cast(array, &DataType::Utf8).map_err(|source| {
                AnonymiseError::Column {
                    column: name.to_string(),
                    source,
                }
            })?;
            let a = cast.as_string::<i32>();
            (0..n)
                .map(|i| {
                    if nulls(i) {
                        Raw::Null
                    } else {
                        Raw::Text(a.value(i).to_string())
                    }
                })
                .collect()
        }
        other => {
            return Err(AnonymiseError::Input(format!(
                "{name} is {other}; a quasi-identifier is a date, an integer or a code"
            )));
        }
    })
}

/// Year, month, day of days since 1970-01-01, for years 0000 to 9999.
pub(crate) fn civil(days: i32) -> Option<(i64, u32, u32)> {
    (-719_528..=2_932_896).contains(&days).then(|| {
        let d = niji_pseudo::CivilDate::from_days_since_epoch(days);
        (i64::from(d.year), d.month, d.day)
    })
}

/// The region (地方区分) of a JIS prefecture code.
fn region(prefecture: u32) -> Option<&'static str> {
    Some(match prefecture {
        1 => "北海道",
        2..=7 => "東北",
        8..=14 => "関東",
        15..=23 => "中部",
        24..=30 => "近畿",
        31..=35 => "中国",
        36..=39 => "四国",
        40..=47 => "九州・沖縄",
        _ => return None,
    })
}

fn span(value: i64, width: u32) -> String {
    let w = i64::from(width);
    let lo = value - value.rem_euclid(w);
    if w == 1 {
        lo.to_string()
    } else {
        format!("{lo}-{}", lo.saturating_add(w - 1))
    }
}

/// What `raw` of column `name` reads at `level`. A missing value stays missing (empty) at
/// every level but `*`.
pub(crate) fn label(name: &str, raw: &Raw, level: Level) -> Result<String, AnonymiseError> {
    let unfit = || {
        AnonymiseError::Input(format!(
            "{name}: level {level} does not apply to its value {}",
            match raw {
                Raw::Null => "(missing)",
                Raw::Date(_) => "(a date)",
                Raw::Int(_) => "(a number)",
                Raw::Text(_) => "(a text)",
            }
        ))
    };
    if level == Level::Suppressed {
        return Ok(SUPPRESSED_LABEL.to_string());
    }
    let year = || match raw {
        Raw::Date(d) => civil(*d).map(|c| c.0),
        Raw::Int(y) => Some(*y),
        _ => None,
    };
    let prefecture = || match raw {
        Raw::Text(code)
            if (5..=6).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) =>
        {
            code[..2].parse::<u32>().ok()
        }
        _ => None,
    };
    Ok(match (level, raw) {
        (_, Raw::Null) => String::new(),
        (Level::Value, Raw::Date(d)) => {
            let (y, m, d) = civil(*d).ok_or_else(unfit)?;
            format!("{y:04}-{m:02}-{d:02}")
        }
        (Level::Value, Raw::Int(v)) => v.to_string(),
        (Level::Value, Raw::Text(t)) => t.clone(),
        (Level::Month, Raw::Date(d)) => {
            let (y, m, _) = civil(*d).ok_or_else(unfit)?;
            format!("{y:04}-{m:02}")
        }
        (Level::Year, _) => year().ok_or_else(unfit)?.to_string(),
        (Level::Years(w), _) => span(year().ok_or_else(unfit)?, w),
        (Level::Band(w), Raw::Int(v)) => span(*v, w),
        (Level::Prefecture, _) => format!("{:02}", prefecture().ok_or_else(unfit)?),
        (Level::Region, _) => region(prefecture().ok_or_else(unfit)?)
            .ok_or_else(unfit)?
            .to_string(),
        _ => return Err(unfit()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_at_each_level() {
        // 2003-07-29 is 12,262 days after 1970-01-01.
        let d = Raw::Date(12_262);
        let l = |raw: &Raw, level| label("c", raw, level).unwrap();
        assert_eq!(l(&d, Level::Value), "2003-07-29");
        assert_eq!(l(&d, Level::Month), "2003-07");
        assert_eq!(l(&d, Level::Year), "2003");
        assert_eq!(l(&d, Level::Years(5)), "2000-2004");
        assert_eq!(l(&Raw::Int(57), Level::Band(5)), "55-59");
        assert_eq!(l(&Raw::Int(-3), Level::Band(5)), "-5--1");
        let muni = Raw::Text("131016".into());
        assert_eq!(l(&muni, Level::Prefecture), "13");
        assert_eq!(l(&muni, Level::Region), "関東");
        assert_eq!(l(&Raw::Text("47201".into()), Level::Region), "九州・沖縄");
        assert_eq!(l(&Raw::Null, Level::Month), "");
        assert_eq!(l(&d, Level::Suppressed), "*");
        assert!(label("c", &Raw::Text("x".into()), Level::Prefecture).is_err());
        assert!(label("c", &Raw::Int(3), Level::Month).is_err());
        assert_eq!(civil(0), Some((1970, 1, 1)));
        assert_eq!(civil(-1), Some((1969, 12, 31)));
        assert!(label("c", &Raw::Date(i32::MAX), Level::Year).is_err());
    }
}
