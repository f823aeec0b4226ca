//! Anonymised record-level extracts (匿名加工情報) as the custodian defines them: a standard
//! dataset whose file is one record per person rather than counts. The definition says which
//! of its query's columns are quasi-identifiers and how each may be generalised (a hierarchy of
//! levels, finest first), which are kept as the record's attributes (top- and bottom-coded
//! where outliers would identify), and which column names the person (one row each, never in
//! the file). k-anonymity over the quasi-identifiers is reached by niji's anonymiser.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::standard::Item;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anonymisation {
    /// The query's person column: one row per person, never in the file.
    pub person: String,
    /// The file's first column: a number per record, unrelated to anything stored.
    pub record_id: String,
    /// Records per combination of quasi-identifiers, where stricter than the policy's k.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u64>,
    pub columns: Vec<ExtractColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractColumn {
    pub name: String,
    pub meaning_ja: String,
    pub meaning_en: String,
    /// For a quasi-identifier: its hierarchy, finest first (the anonymiser picks one level
    /// per quasi-identifier). Empty for an attribute kept as it is.
    #[serde(default)]
    pub levels: Vec<Level>,
    /// Values held by fewer persons than this are pooled as [`POOLED_LABEL`] before anything
    /// else (rare diseases, as in the seed's example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_below: Option<u64>,
    /// Kept numbers at or above `top` read `{top}以上`, at or below `bottom` read `{bottom}以下`
    /// (the seed's 血圧 201以上).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottom: Option<i64>,
    /// Whether local suppression may blank this quasi-identifier in a record (`*`); where it
    /// may not, a record it cannot protect otherwise is left out.
    #[serde(default = "yes")]
    pub suppressible: bool,
}

fn yes() -> bool {
    true
}

/// What pooled rare values read.
pub const POOLED_LABEL: &str = "その他";
/// What a generalised-away or locally suppressed value reads.
pub const SUPPRESSED_LABEL: &str = "*";

/// One level of a quasi-identifier's hierarchy. Each level's groups are unions of the groups
/// of the level before (checked when loaded), so that generalising never splits a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Level {
    /// As it is (a date as `YYYY-MM-DD`, a number, a code).
    Value,
    /// A date's year and month (`2003-07`).
    Month,
    /// A date's year, or a year as it is.
    Year,
    /// Spans of this many years (`2000-2004`) of a date's year or of a year.
    Years(u32),
    /// Bands of this width of a number (`50-54`).
    Band(u32),
    /// A 全国地方公共団体コード's prefecture (its first two digits).
    Prefecture,
    /// The prefecture's region (北海道, 東北, 関東, 中部, 近畿, 中国, 四国, 九州・沖縄).
    Region,
    /// Nothing: the column says `*` in every record.
    Suppressed,
}

impl TryFrom<String> for Level {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let width = |w: &str| {
            w.parse::<u32>()
                .ok()
                .filter(|w| *w >= 1)
                .ok_or_else(|| format!("level {s:?}: the width is a whole number from 1"))
        };
        Ok(match s.as_str() {
            "value" => Level::Value,
            "month" => Level::Month,
            "year" => Level::Year,
            "prefecture" => Level::Prefecture,
            "region" => Level::Region,
            "*" => Level::Suppressed,
            other => match other.split_once(':') {
                Some(("years", w)) => Level::Years(width(w)?),
                Some(("band", w)) => Level::Band(width(w)?),
                _ => {
                    return Err(format!(
                        "unknown level {s:?} (value, month, year, years:N, band:N, prefecture, region, *)"
                    ));
                }
            },
        })
    }
}

impl From<Level> for String {
    fn from(l: Level) -> String {
        l.to_string()
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Level::Value => f.write_str("value"),
            Level::Month => f.write_str("month"),
            Level::Year => f.write_str("year"),
            Level::Years(w) => write!(f, "years:{w}"),
            Level::Band(w) => write!(f, "band:{w}"),
            Level::Prefecture => f.write_str("prefecture"),
            Level::Region => f.write_str("region"),
            Level::Suppressed => f.write_str("*"),
        }
    }
}

/// Whether `next` only merges the groups of `prev` (a proper hierarchy step).
fn coarsens(prev: Level, next: Level) -> bool {
    use Level::*;
    match (prev, next) {
        (_, Suppressed) => prev != Suppressed,
        (Value, _) => true,
        (Month, Year | Years(_)) | (Year, Years(_)) | (Prefecture, Region) => true,
        (Years(a), Years(b)) | (Band(a), Band(b)) => b > a && b % a == 0,
        _ => false,
    }
}

impl ExtractColumn {
    pub fn is_quasi(&self) -> bool {
        !self.levels.is_empty()
    }
}

impl Anonymisation {
    /// The file's columns, in order: the record number, then the columns.
    pub fn items(&self) -> Vec<Item> {
        std::iter::once(Item {
            name: self.record_id.clone(),
            meaning_ja: "レコード番号 (この提供ファイル内のみで有効)".into(),
            meaning_en: "record number (meaningful within this file only)".into(),
        })
        .chain(self.columns.iter().map(|c| Item {
            name: c.name.clone(),
            meaning_ja: c.meaning_ja.clone(),
            meaning_en: c.meaning_en.clone(),
        }))
        .collect()
    }

    pub fn quasi_identifiers(&self) -> impl Iterator<Item = &ExtractColumn> {
        self.columns.iter().filter(|c| c.is_quasi())
    }

    /// Problems with the definition, each named.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::from([self.record_id.as_str()]);
        if self.person == self.record_id {
            problems.push("the person column cannot be the record number".into());
        }
        if self.k == Some(0) {
            problems.push("k is at least 1".into());
        }
        for c in &self.columns {
            if !seen.insert(c.name.as_str()) {
                problems.push(format!("column {} is named twice", c.name));
            }
            if c.name == self.person {
                problems.push(format!("the person column {} is never in the file", c.name));
            }
            for pair in c.levels.windows(2) {
                if !coarsens(pair[0], pair[1]) {
                    problems.push(format!(
                        "{}: level {} does not merge the groups of {}",
                        c.name, pair[1], pair[0]
                    ));
                }
            }
            if c.pool_below.is_some()
                && c.levels
                    .iter()
                    .any(|l| !matches!(l, Level::Value | Level::Suppressed))
            {
                problems.push(format!(
                    "{}: pooled values have levels value and * only",
                    c.name
                ));
            }
            if !c.is_quasi() && (c.pool_below.is_some() || !c.suppressible) {
                problems.push(format!(
                    "{}: pool_below and suppressible are for quasi-identifiers (a column with levels)",
                    c.name
                ));
            }
            if c.is_quasi() && (c.top.is_some() || c.bottom.is_some()) {
                problems.push(format!(
                    "{}: a quasi-identifier is generalised by its levels, not top- or bottom-coded",
                    c.name
                ));
            }
            if let (Some(top), Some(bottom)) = (c.top, c.bottom)
                && bottom >= top
            {
                problems.push(format!("{}: bottom must be below top", c.name));
            }
        }
        if self.quasi_identifiers().next().is_none() {
            problems.push("it names no quasi-identifier (a column with levels)".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_must_coarsen() {
        let l = |s: &str| Level::try_from(s.to_string());
        assert_eq!(l("years:5"), Ok(Level::Years(5)));
        assert!(l("band:0").is_err());
        assert!(l("decade").is_err());
        assert!(coarsens(Level::Month, Level::Years(5)));
        assert!(coarsens(Level::Band(5), Level::Band(10)));
        assert!(!coarsens(Level::Band(5), Level::Band(12)));
        assert!(!coarsens(Level::Region, Level::Prefecture));
        assert!(!coarsens(Level::Suppressed, Level::Suppressed));
    }
}
