//! `niji_cell(person, value...)`: one aggregate for a cell's persons and its contributions,
//! by ascending runs of persons.

use super::*;

pub const CELL_FUNCTION: &str = "niji_cell";
/// The fields of a `niji_cell` result: a set as `niji_set` gives it, and contributions as
/// `niji_contributions` does.
pub const CELL_PERSONS: &str = "persons";
pub const CELL_CONTRIBUTIONS: &str = "contributions";

/// `niji_cell(person, value...)`: the persons of each group and their contributions to k
/// magnitudes in one pass, where `niji_set` and `niji_contributions` take two and keep every
/// person's sums. A person's rows come together within an ascending run of persons (a store
/// clustered by fiscal year and person hands each cell a few runs), so their sum is exact
/// there; a run keeps only its largest sums. The n largest totals of persons are then at most
/// the sum over runs of each run's n largest: a cell that passes dominance and p-percent on these
/// bounds passes on exact sums, and one that does not is checked again exactly.
pub fn cell_udaf() -> AggregateUDF {
    niji_udaf(Kind::Cell, Signature::variadic_any(Volatility::Immutable))
}

pub(crate) fn cell_fields() -> arrow::datatypes::Fields {
    vec![
        Field::new(CELL_PERSONS, DataType::Binary, false),
        Field::new(CELL_CONTRIBUTIONS, DataType::Binary, false),
    ]
    .into()
}

/// `niji_cell_persons(cell)` / `niji_cell_contributions(cell)`: one field of a `niji_cell`
/// result. DataFusion's `get_field` would serve, but its optimizer moves field accesses
/// towards the scan (`push_down_leaf_projections`), which fails on an aggregate's result.
pub fn cell_field_udf(field: &'static str) -> ScalarUDF {
    ScalarUDF::new_from_impl(CellField {
        name: format!("niji_cell_{field}"),
        field,
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CellField {
    pub(crate) name: String,
    pub(crate) field: &'static str,
    pub(crate) signature: Signature,
}

impl ScalarUDFImpl for CellField {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    /// Never null, as `niji_set` and `niji_contributions`: the shadow with cells has the
    /// schema of the one without.
    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(&self.name, DataType::Binary, false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let field = |cells: &arrow::array::StructArray| {
            cells
                .column_by_name(self.field)
                .cloned()
                .ok_or_else(|| exec_datafusion_err!("a cell has no {}", self.field))
        };
        match args.args.first() {
            Some(ColumnarValue::Array(a)) => match a.as_struct_opt() {
                Some(cells) => Ok(ColumnarValue::Array(field(cells)?)),
                None => exec_err!("{} takes a cell", self.name),
            },
            Some(ColumnarValue::Scalar(ScalarValue::Struct(cells))) => Ok(ColumnarValue::Scalar(
                ScalarValue::try_from_array(&field(cells)?, 0)?,
            )),
            _ => exec_err!("{} takes a cell", self.name),
        }
    }
}

/// A run's largest sums, largest first.
pub(crate) type Largest = smallvec::SmallVec<[f64; TOP_CONTRIBUTIONS + 1]>;

/// One value's contributions to a cell.
#[derive(Debug, Default, Clone)]
pub(crate) struct ValueBounds {
    pub(crate) total: f64,
    /// What a sum must exceed to be among the open part's largest, once it has
    /// [`TOP_CONTRIBUTIONS`]: most entries are told apart by it alone.
    pub(crate) floor: f64,
    /// The open part's largest sums, and per rank the sum of the closed parts' (the bounds).
    pub(crate) part: Largest,
    pub(crate) closed: [f64; TOP_CONTRIBUTIONS],
    /// Persons whose sum in a part was zero.
    pub(crate) zeros: Vec<u32>,
}

impl ValueBounds {
    #[inline]
    pub(crate) fn enter(&mut self, sum: f64) {
        self.total += sum;
        if sum > self.floor || self.part.len() < TOP_CONTRIBUTIONS {
            keep_largest(&mut self.part, sum);
            if self.part.len() == TOP_CONTRIBUTIONS {
                self.floor = self.part[TOP_CONTRIBUTIONS - 1];
            }
        }
    }

    pub(crate) fn close_part(&mut self) {
        self.closed
            .iter_mut()
            .zip(self.part.drain(..))
            .for_each(|(c, s)| *c += s);
        self.floor = 0.0;
    }
}

/// Keeps `v` in `top` (largest first) if it is among the [`TOP_CONTRIBUTIONS`] largest.
pub(crate) fn keep_largest(top: &mut Largest, v: f64) {
    if top.len() < TOP_CONTRIBUTIONS || top.last().is_some_and(|min| v > *min) {
        let at = top.partition_point(|t| *t >= v);
        top.insert(at, v);
        top.truncate(TOP_CONTRIBUTIONS);
    }
}

/// A cell's open entry: the person whose rows in this run it has summed so far, and the k
/// sums. [`CellGroups`] keeps every group's in two arrays beside the cells, so that a row adding
/// to its entry (most rows) touches a few bytes, not a cell and its bounds, which among hundreds
/// of cells would be out of the first-level cache nearly every row.
pub(crate) struct Entry<'a> {
    pub(crate) person: &'a mut Option<u32>,
    pub(crate) sums: &'a mut [f64],
}

impl Entry<'_> {
    /// Adds a row of `person` if the entry is theirs; whether it was.
    #[inline(always)]
    pub(crate) fn continues(&mut self, person: u32, value: &impl Fn(usize) -> f64) -> bool {
        if *self.person != Some(person) {
            return false;
        }
        for (j, sum) in self.sums.iter_mut().enumerate() {
            *sum += value(j).abs();
        }
        true
    }
}

#[derive(Debug)]
pub(crate) struct Cell {
    pub(crate) persons: Group,
    /// Parts begun (runs, and states merged in), and whether one is open.
    pub(crate) parts: u32,
    pub(crate) part_open: bool,
    pub(crate) values: Vec<ValueBounds>,
}

impl Cell {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            persons: Group::default(),
            parts: 0,
            part_open: false,
            values: vec![ValueBounds::default(); k],
        }
    }

    /// A row of `person`, summed into `entry`; whether it opened an entry. Inlined into the
    /// row loop for the common row, which only continues the entry.
    #[inline(always)]
    pub(crate) fn add(
        &mut self,
        entry: &mut Entry<'_>,
        person: u32,
        value: impl Fn(usize) -> f64,
    ) -> bool {
        if entry.continues(person, &value) {
            return false;
        }
        self.open_entry(entry, person, value);
        true
    }

    /// Closes `entry` (another person's, or none) and opens it for `person`.
    pub(crate) fn open_entry(
        &mut self,
        entry: &mut Entry<'_>,
        person: u32,
        value: impl Fn(usize) -> f64,
    ) {
        if let Some(open) = *entry.person {
            self.close_entry(open, entry.sums);
            // A person below the open one begins a run.
            if person < open {
                self.close_part();
            }
        }
        self.begin_part();
        *entry.person = Some(person);
        self.persons.push(person);
        for (j, sum) in entry.sums.iter_mut().enumerate() {
            *sum = value(j).abs();
        }
    }

    /// A row of no identified person: an entry of its own, and nobody's.
    pub(crate) fn add_anonymous(&mut self, value: impl Fn(usize) -> f64) {
        self.begin_part();
        for (j, v) in self.values.iter_mut().enumerate() {
            let sum = value(j).abs();
            if sum != 0.0 {
                v.enter(sum);
            }
        }
    }

    pub(crate) fn begin_part(&mut self) {
        if !self.part_open {
            // Saturating: a count that wrapped round would claim one part, and exactness.
            self.parts = self.parts.saturating_add(1);
            self.part_open = true;
        }
    }

    pub(crate) fn close_entry(&mut self, person: u32, sums: &[f64]) {
        for (v, &sum) in self.values.iter_mut().zip(sums) {
            if sum == 0.0 {
                v.zeros.push(person);
            } else {
                v.enter(sum);
            }
        }
    }

    pub(crate) fn close_part(&mut self) {
        self.values.iter_mut().for_each(ValueBounds::close_part);
        self.part_open = false;
    }

    /// Closes `entry`, and the open part: the cell is then handed on.
    pub(crate) fn finish(&mut self, entry: &mut Entry<'_>) {
        if let Some(open) = entry.person.take() {
            self.close_entry(open, entry.sums);
        }
        self.close_part();
    }

    /// The partial state of a finished cell: parts, the set, then per value its total, bounds
    /// and zeros.
    pub(crate) fn state(mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.parts.to_le_bytes());
        let set = std::mem::take(&mut self.persons).encode();
        out.extend_from_slice(&(set.len() as u32).to_le_bytes());
        out.extend_from_slice(&set);
        for v in &self.values {
            out.extend_from_slice(&v.total.to_le_bytes());
            v.closed
                .iter()
                .for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
            out.extend_from_slice(&(v.zeros.len() as u32).to_le_bytes());
            v.zeros
                .iter()
                .for_each(|z| out.extend_from_slice(&z.to_le_bytes()));
        }
    }

    /// Adds a partial state ([`Cell::state`]); how many members it brought. A state of one
    /// entry (a row handed on alone, as DataFusion does where it skips partial aggregation, or
    /// one person's rows) joins the open run as an entry: a part each would leave a grouping of
    /// many small groups with bounds no better than their totals, and a recheck every time.
    /// Other states are parts of their own. Nothing is added from a state cut short.
    pub(crate) fn merge(&mut self, entry: &mut Entry<'_>, state: &[u8]) -> Result<usize> {
        let Some(state) = CellState::read(state, self.values.len()) else {
            return exec_err!("a cell's partial state was cut short");
        };
        let value = |j: usize| state.values[j].total;
        match state.single_entry()? {
            Some(Some(person)) => return Ok(usize::from(self.add(entry, person, value))),
            Some(None) => {
                self.add_anonymous(value);
                return Ok(0);
            }
            None => {}
        }
        self.persons.add_set(state.set)?;
        self.parts = self.parts.saturating_add(state.parts);
        let mut members = state.set.len() / 4;
        for (v, read) in self.values.iter_mut().zip(state.values) {
            v.total += read.total;
            v.closed
                .iter_mut()
                .zip(read.closed)
                .for_each(|(c, bound)| *c += bound);
            members += read.zeros.len();
            v.zeros.extend(read.zeros);
        }
        Ok(members)
    }

    /// The set of a finished cell, and one section per value (see [`Contributions::decode`]).
    pub(crate) fn evaluate(self) -> (Vec<u8>, Vec<u8>) {
        let persons = self.persons.finish();
        let mut contributions = vec![CONTRIBUTIONS_FORM];
        for v in &self.values {
            let form = match (self.parts <= 1, v.zeros.is_empty()) {
                (true, _) => Form::Exact,
                (false, true) => Form::Bounds,
                (false, false) => Form::PersonsUnknown,
            };
            // In one part a person is one entry: a zero sum is theirs in all.
            let contributors = match form {
                Form::Exact => &persons - v.zeros.iter().copied().collect::<RoaringBitmap>(),
                Form::Bounds | Form::PersonsUnknown => persons.clone(),
            };
            let top: Vec<f64> = v.closed.iter().copied().take_while(|c| *c != 0.0).collect();
            Contributions::encode_section(form, v.total, &top, &contributors, &mut contributions);
        }
        (encode_set(&persons), contributions)
    }
}

/// A cell's partial state as [`Cell::state`] wrote it.
pub(crate) struct CellState<'a> {
    pub(crate) parts: u32,
    pub(crate) set: &'a [u8],
    pub(crate) values: Vec<ValueState>,
}

pub(crate) struct ValueState {
    pub(crate) total: f64,
    pub(crate) closed: [f64; TOP_CONTRIBUTIONS],
    pub(crate) zeros: Vec<u32>,
}

/// A serialized roaring set of one member is about 20 bytes: longer ones are not read twice.
pub(crate) const ONE_MEMBER_BYTES: usize = 32;

impl<'a> CellState<'a> {
    pub(crate) fn read(mut state: &'a [u8], k: usize) -> Option<Self> {
        let rest = &mut state;
        let parts = read_u32(rest)?;
        let len = read_u32(rest)? as usize;
        let set = take(rest, len)?;
        let values = (0..k)
            .map(|_| {
                let total = read_f64(rest)?;
                let mut closed = [0.0; TOP_CONTRIBUTIONS];
                for c in &mut closed {
                    *c = read_f64(rest)?;
                }
                let zeros = (0..read_u32(rest)?)
                    .map(|_| read_u32(rest))
                    .collect::<Option<_>>()?;
                Some(ValueState {
                    total,
                    closed,
                    zeros,
                })
            })
            .collect::<Option<_>>()?;
        Some(Self { parts, set, values })
    }

    /// Whether it is one entry, and whose (None: a record of nobody): one part, at most one
    /// person, and per value at most one sum, which is then the total.
    pub(crate) fn single_entry(&self) -> Result<Option<Option<u32>>> {
        if self.parts != 1 || self.set.len() > ONE_MEMBER_BYTES {
            return Ok(None);
        }
        let members = decode_set(self.set)?;
        let one_sum =
            |v: &ValueState| v.closed[1..].iter().all(|c| *c == 0.0) && v.total == v.closed[0];
        Ok(match (members.len(), members.min()) {
            (0, _) if self.values.iter().all(|v| v.zeros.is_empty() && one_sum(v)) => Some(None),
            (1, Some(person))
                if self.values.iter().all(|v| {
                    (v.zeros.is_empty() && one_sum(v))
                        || (v.zeros == [person] && v.total == 0.0 && v.closed[0] == 0.0)
                }) =>
            {
                Some(Some(person))
            }
            _ => None,
        })
    }
}

/// The accumulator of `niji_cell`.
#[derive(Debug)]
pub(crate) struct CellGroups {
    pub(crate) k: usize,
    /// Per group, its open entry (see [`Entry`]): the person, and k sums.
    pub(crate) open: Vec<Option<u32>>,
    pub(crate) sums: Vec<f64>,
    pub(crate) cells: Vec<Cell>,
    /// Members added so far (set members, zeros): a cheap bound on the cells' size.
    pub(crate) added: usize,
}

impl CellGroups {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            open: Vec::new(),
            sums: Vec::new(),
            cells: Vec::new(),
            added: 0,
        }
    }

    pub(crate) fn entry(&mut self, group: usize) -> (&mut Cell, Entry<'_>) {
        let k = self.k;
        let entry = Entry {
            person: &mut self.open[group],
            sums: &mut self.sums[group * k..(group + 1) * k],
        };
        (&mut self.cells[group], entry)
    }

    /// The cells to hand on, finished (their entries and parts closed).
    pub(crate) fn take(&mut self, emit_to: EmitTo) -> Vec<Cell> {
        let taken = match emit_to {
            EmitTo::All => self.cells.len(),
            EmitTo::First(n) => n.min(self.cells.len()),
        };
        for group in 0..taken {
            let (cell, mut entry) = self.entry(group);
            cell.finish(&mut entry);
        }
        self.open.drain(..taken);
        self.sums.drain(..taken * self.k);
        let cells: Vec<Cell> = self.cells.drain(..taken).collect();
        self.added = self
            .cells
            .iter()
            .map(|c| c.persons.held() + c.values.iter().map(|v| v.zeros.len()).sum::<usize>())
            .sum();
        cells
    }
}

impl Contributing for CellGroups {
    /// A person is in the set whatever their values; a record of nobody only with a value.
    #[inline]
    fn take(
        &mut self,
        group: usize,
        person: Option<u32>,
        valued: bool,
        value: impl Fn(usize) -> f64,
    ) {
        match person {
            Some(person) => {
                // The common row continues its person's entry: `Cell::add` reads no more.
                let (cell, mut entry) = self.entry(group);
                let opened = cell.add(&mut entry, person, value);
                self.added += usize::from(opened);
            }
            None if valued => self.cells[group].add_anonymous(value),
            None => {}
        }
    }

    fn empty(&self) -> Self {
        Self::new(self.k)
    }

    fn grow(&mut self, total: usize) {
        let k = self.k;
        if self.cells.len() < total {
            self.cells.resize_with(total, || Cell::new(k));
            self.open.resize(total, None);
            self.sums.resize(total * k, 0.0);
        }
    }

    fn merge(&mut self, group: usize, state: &[u8]) -> Result<()> {
        let (cell, mut entry) = self.entry(group);
        let members = cell.merge(&mut entry, state)?;
        self.added += members;
        Ok(())
    }

    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        cell_array(self.take(emit_to).into_iter().map(Cell::evaluate))
    }

    fn emit_state(&mut self, emit_to: EmitTo) -> ArrayRef {
        state_array(self.take(emit_to), Cell::state)
    }

    fn size(&self) -> usize {
        self.cells.capacity() * std::mem::size_of::<Cell>()
            + self.open.capacity() * std::mem::size_of::<Option<u32>>()
            + self.sums.capacity() * std::mem::size_of::<f64>()
            + self.cells.len() * self.k * std::mem::size_of::<ValueBounds>()
            + 4 * self.added
    }
}

/// Cells as `niji_cell` and `niji_bounded_cell` give them: each group's set and contributions.
pub(crate) fn cell_array(cells: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) -> Result<ArrayRef> {
    let mut persons = BinaryBuilder::new();
    let mut contributions = BinaryBuilder::new();
    for (set, sections) in cells {
        persons.append_value(set);
        contributions.append_value(sections);
    }
    Ok(Arc::new(arrow::array::StructArray::try_new(
        cell_fields(),
        vec![Arc::new(persons.finish()), Arc::new(contributions.finish())],
        None,
    )?))
}

/// Partial states, one a group, each written by `write` into a buffer reused from group to
/// group.
pub(crate) fn state_array<T>(
    groups: impl IntoIterator<Item = T>,
    mut write: impl FnMut(T, &mut Vec<u8>),
) -> ArrayRef {
    let mut out = BinaryBuilder::new();
    let mut bytes = Vec::new();
    for group in groups {
        bytes.clear();
        write(group, &mut bytes);
        out.append_value(&bytes);
    }
    Arc::new(out.finish())
}
