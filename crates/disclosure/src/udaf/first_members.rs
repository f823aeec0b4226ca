//! `niji_first_members(x)`: at most a cap of distinct members per group, for the facility rule.

use super::*;

pub const FIRST_MEMBERS_FUNCTION: &str = "niji_first_members";

/// At most `cap` distinct members per group (facilities: the rule only asks whether a cell
/// rests on fewer than its minimum). A group that has them all skips its rows unread, so a
/// large cell costs nearly nothing, where a full set would hash and keep every facility.
pub fn first_members_udaf(cap: usize) -> AggregateUDF {
    niji_udaf(
        Kind::FirstMembers(cap.clamp(1, MAX_FIRST_MEMBERS)),
        Signature::any(1, Volatility::Immutable),
    )
}

/// The largest cap of [`first_members_udaf`] (a policy's facility minimum).
pub const MAX_FIRST_MEMBERS: usize = 1_000;
