//! Parent links: the columns a detail row (傷病名, 診療行為, 医薬品) carries from its parent
//! record. Not in the catalog, so no project view shows them.

/// The parent's person index, on each detail row.
pub const PARENT_PERSON: &str = "parent_person_idx";
/// The mark of the parent's facility ([`crate::facility_mark`] of its code), on each
/// detail row.
pub const PARENT_FACILITY: &str = "parent_facility";
/// The parent's period column (its claim month, say), on each detail row.
pub const PARENT_PERIOD: &str = "parent_period";
