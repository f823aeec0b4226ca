//! A cell's contributions as the rules read them: the total, the contributing persons and the
//! largest per-person sums.

use super::*;

/// A cell's contributions: the total, the identified persons contributing anything (a sum over
/// others than these would differ by their values), and the largest per-person sums, largest
/// first.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    pub form: Form,
    pub total: f64,
    pub persons: RoaringBitmap,
    pub top: Vec<f64>,
}

/// What a section of contributions holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Every person's sum was known: `top` are the largest.
    Exact = 0,
    /// The cell came in parts (ascending runs of persons, partial states), a person's sum exact
    /// within each: the first n of `top` sum to at least the n largest contributions.
    Bounds = 1,
    /// As `Bounds`, and some person's sum was zero in a part. Whether they add anything in
    /// another part is not known, so `persons` (the group's) may hold persons who add nothing.
    PersonsUnknown = 2,
}

impl Contributions {
    /// The sections of one cell of `niji_contributions`, one per value it was given. A section
    /// cut short is left out (a check that finds its section missing fails closed). None: the
    /// cell was written in another form (a result held before the form changed).
    pub fn decode(bytes: &[u8]) -> Option<Vec<Self>> {
        let (&CONTRIBUTIONS_FORM, mut rest) = bytes.split_first()? else {
            return None;
        };
        let mut out = Vec::new();
        while let Some(section) = Self::decode_section(&mut rest) {
            out.push(section);
        }
        Some(out)
    }

    pub(crate) fn decode_section(rest: &mut &[u8]) -> Option<Self> {
        let form = match take(rest, 1)? {
            [0] => Form::Exact,
            [1] => Form::Bounds,
            [2] => Form::PersonsUnknown,
            _ => return None,
        };
        let total = read_f64(rest)?;
        let n = read_u32(rest)?;
        let top = (0..n)
            .map(|_| read_f64(rest))
            .collect::<Option<Vec<f64>>>()?;
        let len = read_u32(rest)? as usize;
        let persons = RoaringBitmap::deserialize_from(take(rest, len)?).ok()?;
        Some(Self {
            form,
            total,
            persons,
            top,
        })
    }

    /// Appends a section in the form [`Contributions::decode`] reads.
    pub(crate) fn encode_section(
        form: Form,
        total: f64,
        top: &[f64],
        persons: &RoaringBitmap,
        out: &mut Vec<u8>,
    ) {
        out.push(form as u8);
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(&(top.len() as u32).to_le_bytes());
        for v in top {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(persons.serialized_size() as u32).to_le_bytes());
        // Writing to a Vec cannot fail.
        let _ = persons.serialize_into(&mut *out);
    }
}

/// The first byte of a contributions cell: its form, so that a cell written in an earlier form
/// is told apart rather than misread.
pub(crate) const CONTRIBUTIONS_FORM: u8 = 3;

/// A little-endian u32, or f64, at the start of `rest`, which moves past it.
pub(crate) fn read_u32(rest: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(rest, 4)?.try_into().ok()?))
}

pub(crate) fn read_f64(rest: &mut &[u8]) -> Option<f64> {
    Some(f64::from_le_bytes(take(rest, 8)?.try_into().ok()?))
}

/// The first `n` bytes of `rest`, which moves past them.
pub(crate) fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}
