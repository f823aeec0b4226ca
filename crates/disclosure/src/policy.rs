//! `policies/disclosure.toml`: the release rules, with defaults from the published rules and
//! per-database overrides. A result drawing on several databases gets the strictest of each.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::DisclosureError;

/// The rules of one database (every field may be left out of an override).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Distinct persons a released cell must rest on (0 persons may be shown).
    pub min_persons: u64,
    /// Whether cells resting on fewer than `min_facilities` facilities are suppressed.
    pub facility_rule: bool,
    pub min_facilities: u64,
    /// Cells about a municipality with fewer inhabitants carry no counts at all.
    pub municipality_no_counts_below: u64,
    /// Cells about a municipality with fewer inhabitants need `municipality_min_persons`.
    pub municipality_strict_below: u64,
    pub municipality_min_persons: u64,
    /// Dominance (n, k): the n largest contributors may not make more than k% of a total.
    pub dominance_n: usize,
    pub dominance_k: f64,
    /// p-percent: the total less the two largest contributions must exceed p% of the largest.
    pub p_percent: f64,
    /// Released counts are rounded to a multiple of this (0 or 1: not rounded).
    pub rounding: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            min_persons: 10,
            facility_rule: true,
            min_facilities: 3,
            municipality_no_counts_below: 2_000,
            municipality_strict_below: 25_000,
            municipality_min_persons: 20,
            dominance_n: 2,
            dominance_k: 90.0,
            p_percent: 10.0,
            rounding: 0,
        }
    }
}

impl Rules {
    /// The stricter of two rule sets, rule by rule.
    pub fn strictest(&self, other: &Rules) -> Rules {
        Rules {
            min_persons: self.min_persons.max(other.min_persons),
            facility_rule: self.facility_rule || other.facility_rule,
            min_facilities: self.min_facilities.max(other.min_facilities),
            municipality_no_counts_below: self
                .municipality_no_counts_below
                .max(other.municipality_no_counts_below),
            municipality_strict_below: self
                .municipality_strict_below
                .max(other.municipality_strict_below),
            municipality_min_persons: self
                .municipality_min_persons
                .max(other.municipality_min_persons),
            dominance_n: self.dominance_n.max(other.dominance_n),
            dominance_k: self.dominance_k.min(other.dominance_k),
            p_percent: self.p_percent.max(other.p_percent),
            rounding: self.rounding.max(other.rounding),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    min_persons: Option<u64>,
    facility_rule: Option<bool>,
    min_facilities: Option<u64>,
    municipality_no_counts_below: Option<u64>,
    municipality_strict_below: Option<u64>,
    municipality_min_persons: Option<u64>,
    dominance_n: Option<usize>,
    dominance_k: Option<f64>,
    p_percent: Option<f64>,
    rounding: Option<u64>,
}

impl Overrides {
    fn apply(&self, base: &Rules) -> Rules {
        Rules {
            min_persons: self.min_persons.unwrap_or(base.min_persons),
            facility_rule: self.facility_rule.unwrap_or(base.facility_rule),
            min_facilities: self.min_facilities.unwrap_or(base.min_facilities),
            municipality_no_counts_below: self
                .municipality_no_counts_below
                .unwrap_or(base.municipality_no_counts_below),
            municipality_strict_below: self
                .municipality_strict_below
                .unwrap_or(base.municipality_strict_below),
            municipality_min_persons: self
                .municipality_min_persons
                .unwrap_or(base.municipality_min_persons),
            dominance_n: self.dominance_n.unwrap_or(base.dominance_n),
            dominance_k: self.dominance_k.unwrap_or(base.dominance_k),
            p_percent: self.p_percent.unwrap_or(base.p_percent),
            rounding: self.rounding.unwrap_or(base.rounding),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default: Overrides,
    #[serde(default)]
    database: BTreeMap<String, Overrides>,
}

#[derive(Debug, Clone, Default)]
pub struct DisclosurePolicy {
    default: Rules,
    databases: BTreeMap<String, Rules>,
}

impl DisclosurePolicy {
    pub fn load(path: &Path) -> Result<Self, DisclosureError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DisclosureError::Policy(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| DisclosureError::Policy(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let default = file.default.apply(&Rules::default());
        let databases = file
            .database
            .iter()
            .map(|(db, o)| (db.clone(), o.apply(&default)))
            .collect();
        let policy = Self { default, databases };
        for (name, r) in std::iter::once(("default", &policy.default))
            .chain(policy.databases.iter().map(|(n, r)| (n.as_str(), r)))
        {
            if r.min_persons == 0
                || r.dominance_n == 0
                || r.dominance_n > crate::udaf::TOP_CONTRIBUTIONS
            {
                return Err(format!(
                    "{name}: min_persons must be at least 1 and dominance_n between 1 and {}",
                    crate::udaf::TOP_CONTRIBUTIONS
                ));
            }
            if r.min_facilities as usize > crate::udaf::MAX_FIRST_MEMBERS {
                return Err(format!(
                    "{name}: min_facilities is at most {}",
                    crate::udaf::MAX_FIRST_MEMBERS
                ));
            }
            if !(0.0..=100.0).contains(&r.dominance_k) || !(0.0..=100.0).contains(&r.p_percent) {
                return Err(format!("{name}: dominance_k and p_percent are percentages"));
            }
        }
        Ok(policy)
    }

    /// The most facilities any rule asks a cell to rest on.
    pub fn facility_cap(&self) -> usize {
        self.databases
            .values()
            .chain(std::iter::once(&self.default))
            .map(|r| r.min_facilities as usize)
            .max()
            .unwrap_or(0)
    }

    pub fn rules(&self, database: &str) -> &Rules {
        self.databases.get(database).unwrap_or(&self.default)
    }

    /// These rules with every minimum of persons raised to at least `min_persons`: a
    /// project's condition of approval makes the rules stricter, never looser.
    pub fn at_least(&self, min_persons: u64) -> Self {
        let raise = |r: &Rules| Rules {
            min_persons: r.min_persons.max(min_persons),
            municipality_min_persons: r.municipality_min_persons.max(min_persons),
            ..r.clone()
        };
        Self {
            default: raise(&self.default),
            databases: self
                .databases
                .iter()
                .map(|(db, r)| (db.clone(), raise(r)))
                .collect(),
        }
    }

    /// The strictest rules over `databases` (the defaults when there are none).
    pub fn for_databases<'a>(&self, databases: impl IntoIterator<Item = &'a str>) -> Rules {
        databases
            .into_iter()
            .map(|db| self.rules(db).clone())
            .reduce(|a, b| a.strictest(&b))
            .unwrap_or_else(|| self.default.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_per_database_and_combine_to_the_strictest() {
        let p = DisclosurePolicy::parse(
            "[default]\nmin_persons = 10\n[database.nanbyo]\nmin_persons = 20\nfacility_rule = false\n[database.kaigo]\nfacility_rule = false\nrounding = 5\n",
        )
        .expect("policy");
        assert_eq!(p.rules("ndb").min_persons, 10);
        assert_eq!(p.rules("nanbyo").min_persons, 20);
        assert!(!p.rules("nanbyo").facility_rule);
        let both = p.for_databases(["nanbyo", "kaigo"]);
        assert_eq!(both.min_persons, 20);
        assert!(!both.facility_rule);
        assert_eq!(both.rounding, 5);
        assert!(p.for_databases(["nanbyo", "ndb"]).facility_rule);
    }

    #[test]
    fn a_project_minimum_only_ever_raises() {
        let p = DisclosurePolicy::parse(
            "[default]\nmin_persons = 10\n[database.nanbyo]\nmin_persons = 30\n",
        )
        .expect("policy");
        let stricter = p.at_least(20);
        assert_eq!(stricter.rules("ndb").min_persons, 20);
        assert_eq!(stricter.rules("nanbyo").min_persons, 30, "never lowered");
        assert_eq!(stricter.rules("ndb").municipality_min_persons, 20);
        assert_eq!(p.at_least(1).rules("ndb").min_persons, 10);
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(DisclosurePolicy::parse("[default]\nmin_persons = 0\n").is_err());
        assert!(DisclosurePolicy::parse("[default]\ndominance_k = 150.0\n").is_err());
        assert!(DisclosurePolicy::parse("[default]\nmin_person = 5\n").is_err());
    }
}
