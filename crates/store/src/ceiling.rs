//! Ceilings: what ingest learned of a numeric column's largest per-person totals.

use serde::{Deserialize, Serialize};

/// What ingest learned of a stored numeric column, for disclosure control: the largest totals
/// of |value| that one person has over the whole table (a row of no person counts as a person
/// of its own), largest first, and whether any value is zero. A cell over rows of the table,
/// each taken at most once, holds no person's contribution above their total: its n largest
/// contributions sum to at most the first n of these, which a check may use without summing
/// per person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    pub largest: Vec<f64>,
    pub zeros: bool,
}
