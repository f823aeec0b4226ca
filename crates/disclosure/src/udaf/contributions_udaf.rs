//! `niji_contributions(person, value...)`: per person, the sum of |value|; per group, the
//! total and the largest contributions, for dominance and p-percent.

use super::*;

pub const CONTRIBUTIONS_FUNCTION: &str = "niji_contributions";
/// Largest contributions kept per cell (the dominance rule's n is at most this).
pub const TOP_CONTRIBUTIONS: usize = 5;

pub fn contributions_udaf() -> AggregateUDF {
    niji_udaf(
        Kind::Contributions,
        Signature::variadic_any(Volatility::Immutable),
    )
}
