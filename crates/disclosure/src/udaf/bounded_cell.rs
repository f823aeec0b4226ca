//! `niji_bounded_cell(person, value...)`: a cell's persons and its totals of |value| where
//! the store's ceilings bound each person's largest sums: nothing kept per person.

use super::*;

pub const BOUNDED_CELL_FUNCTION: &str = "niji_bounded_cell";

/// `niji_bounded_cell(person, value...)`: what `niji_cell` gives, for values whose largest
/// per-person sums are bounded by `ceilings` (one per value: its stored column's, see
/// [`niji_store::Ceiling`]): each group's persons and its totals of |value|, in one pass and
/// with nothing kept per person. A cell the ceilings do not settle is checked again exactly.
pub fn bounded_cell_udaf(ceilings: &[Vec<f64>]) -> AggregateUDF {
    AggregateUDF::new_from_impl(NijiUdaf {
        kind: Kind::BoundedCell,
        signature: Signature::variadic_any(Volatility::Immutable),
        ceilings: ceilings
            .iter()
            .map(|c| c.iter().map(|v| v.to_bits()).collect())
            .collect(),
    })
}

/// The accumulator of `niji_bounded_cell`.
#[derive(Debug)]
pub(crate) struct BoundedCellGroups {
    /// Per value, its ceiling's largest totals.
    pub(crate) ceilings: Arc<Vec<Vec<f64>>>,
    pub(crate) persons: Vec<Group>,
    /// Per group, k totals of |value|.
    pub(crate) totals: Vec<f64>,
    /// Members added so far: a cheap bound on the sets' size.
    pub(crate) added: usize,
}

impl BoundedCellGroups {
    pub(crate) fn new(ceilings: Vec<Vec<f64>>) -> Self {
        Self {
            ceilings: Arc::new(ceilings),
            persons: Vec::new(),
            totals: Vec::new(),
            added: 0,
        }
    }

    pub(crate) fn k(&self) -> usize {
        self.ceilings.len()
    }

    /// The groups to hand on: their sets and totals.
    pub(crate) fn take(&mut self, emit_to: EmitTo) -> (Vec<Group>, Vec<f64>) {
        let groups = emit_to.take_needed(&mut self.persons);
        let totals = self.totals.drain(..groups.len() * self.k()).collect();
        self.added = self.persons.iter().map(Group::held).sum();
        (groups, totals)
    }
}

impl Contributing for BoundedCellGroups {
    #[inline]
    fn take(
        &mut self,
        group: usize,
        person: Option<u32>,
        valued: bool,
        value: impl Fn(usize) -> f64,
    ) {
        if let Some(person) = person {
            self.persons[group].push(person);
            self.added += 1;
        } else if !valued {
            return;
        }
        let k = self.k();
        for (j, total) in self.totals[group * k..(group + 1) * k]
            .iter_mut()
            .enumerate()
        {
            *total += value(j).abs();
        }
    }

    fn empty(&self) -> Self {
        Self {
            ceilings: self.ceilings.clone(),
            persons: Vec::new(),
            totals: Vec::new(),
            added: 0,
        }
    }

    fn grow(&mut self, total: usize) {
        grow(&mut self.persons, total);
        self.totals.resize(total * self.k(), 0.0);
    }

    /// A state: the set's length and the set, then the k totals.
    fn merge(&mut self, group: usize, state: &[u8]) -> Result<()> {
        let k = self.k();
        let rest = &mut &state[..];
        let set = read_u32(rest).and_then(|len| take(rest, len as usize));
        let totals = (0..k).map(|_| read_f64(rest)).collect::<Option<Vec<f64>>>();
        let (Some(set), Some(totals)) = (set, totals) else {
            return exec_err!("a ceiled cell's partial state was cut short");
        };
        self.persons[group].add_set(set)?;
        self.added += set.len() / 4;
        for (sum, t) in self.totals[group * k..(group + 1) * k]
            .iter_mut()
            .zip(totals)
        {
            *sum += t;
        }
        Ok(())
    }

    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let k = self.k();
        let (groups, totals) = self.take(emit_to);
        let ceilings = self.ceilings.clone();
        cell_array(
            groups
                .into_iter()
                .zip(totals.chunks(k))
                .map(|(group, totals)| {
                    let set = group.finish();
                    let mut sections = vec![CONTRIBUTIONS_FORM];
                    // Every person with a row contributes (a ceiled sum's column has no zero).
                    for (&total, largest) in totals.iter().zip(ceilings.iter()) {
                        Contributions::encode_section(
                            Form::Bounds,
                            total,
                            largest,
                            &set,
                            &mut sections,
                        );
                    }
                    (encode_set(&set), sections)
                }),
        )
    }

    fn emit_state(&mut self, emit_to: EmitTo) -> ArrayRef {
        let k = self.k();
        let (groups, totals) = self.take(emit_to);
        state_array(
            groups.into_iter().zip(totals.chunks(k)),
            |(group, totals), bytes| {
                let set = group.encode();
                bytes.extend_from_slice(&(set.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&set);
                totals
                    .iter()
                    .for_each(|t| bytes.extend_from_slice(&t.to_le_bytes()));
            },
        )
    }

    fn size(&self) -> usize {
        self.persons.capacity() * std::mem::size_of::<Group>()
            + self.totals.capacity() * std::mem::size_of::<f64>()
            + 4 * self.added
    }
}
