//! Facility marks: how the store keeps which facility a row is of, so that disclosure
//! control can count facilities without reading codes as text.

/// The stored mark of a row's facility (UInt32, from [`facility_mark`]), beside the code in a
/// table with a facility column. Not in the catalog, so no project view shows it: disclosure
/// control counts the facilities behind a cell on it without reading codes as text.
pub const FACILITY_MARK_COLUMN: &str = "facility_mark";

/// A facility code's mark: FNV-1a over its bytes, folded to 32 bits; stable across machines
/// and versions, because it is stored. Two codes sharing a mark can only make a count of
/// facilities smaller, so a rule errs towards suppressing.
pub fn facility_mark(code: &str) -> u32 {
    let hash = code.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash ^ (hash >> 32)) as u32
}
