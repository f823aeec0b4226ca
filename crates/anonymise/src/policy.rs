//! The custodian's anonymisation policy (`policies/anonymisation.toml`): the k every extract
//! reaches at least, and how many records the anonymiser may suppress, whole or in part.

use std::path::Path;

use serde::Deserialize;

use crate::AnonymiseError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymisationPolicy {
    /// Records per combination of quasi-identifiers, at least (a definition may ask more).
    pub k: u64,
    /// Of an extract's records, at most this percentage may be in groups smaller than k at
    /// the chosen generalisation: they are suppressed, in part (local suppression) or whole.
    pub max_suppressed_percent: f64,
}

impl AnonymisationPolicy {
    pub fn load(path: &Path) -> Result<Self, AnonymiseError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AnonymiseError::Policy(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| AnonymiseError::Policy(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let p: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if p.k < 2 {
            return Err("k is at least 2".into());
        }
        if !(0.0..=100.0).contains(&p.max_suppressed_percent) {
            return Err("max_suppressed_percent is from 0 to 100".into());
        }
        Ok(p)
    }

    /// The k an extract must reach: the policy's, or the definition's where stricter.
    pub fn k_for(&self, definition_k: Option<u64>) -> u64 {
        definition_k.map_or(self.k, |k| k.max(self.k))
    }

    /// Records of `n` that may be suppressed.
    pub fn max_suppressed(&self, n: usize) -> u64 {
        (n as f64 * self.max_suppressed_percent / 100.0).floor() as u64
    }
}
