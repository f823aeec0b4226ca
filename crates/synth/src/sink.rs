//! Where generated rows go: per-table CSV buffers in the extract's encoding, with the realistic
//! mess applied and a small, counted share of defective rows that ingest must quarantine.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::io::Write as _;

use serde::Serialize;

use crate::rng::{Rng, splitmix64};

/// How an extract is encoded on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    Utf8,
    Cp932,
}

/// Static description of one extract file.
#[derive(Debug)]
pub struct TableSpec {
    pub db: &'static str,
    pub table: &'static str,
    pub encoding: Enc,
    pub header: &'static [&'static str],
    /// Whether rows are records of persons (listed in the truth file).
    pub person_level: bool,
    /// Whether this extract gets defective rows injected.
    pub defects: bool,
}

impl TableSpec {
    fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| *h == name)
    }
}

/// Reasons a row is defective; the same words the ingest report uses.
pub const DEFECTS: [&str; 4] = [
    "column_count",
    "invalid_date",
    "invalid_insured_number",
    "undecodable",
];

/// What was generated for one table, for the synth report.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TableStats {
    pub rows: u64,
    pub defective: BTreeMap<&'static str, u64>,
}

/// One row being built: the text and where each field ends.
#[derive(Debug, Default)]
pub struct Row {
    line: String,
    ends: Vec<usize>,
}

impl Row {
    pub fn push(&mut self, value: impl Display) -> &mut Self {
        if !self.ends.is_empty() {
            self.line.push(',');
        }
        let _ = write!(self.line, "{value}");
        self.ends.push(self.line.len());
        self
    }

    fn start_of(&self, field: usize) -> usize {
        if field == 0 {
            0
        } else {
            self.ends[field - 1] + 1
        }
    }

    fn field(&self, i: usize) -> &str {
        &self.line[self.start_of(i)..self.ends[i]]
    }

    fn replace(&mut self, i: usize, value: &str) {
        let (start, end) = (self.start_of(i), self.ends[i]);
        self.line.replace_range(start..end, value);
        let delta = value.len() as isize - (end - start) as isize;
        for e in &mut self.ends[i..] {
            *e = (*e as isize + delta) as usize;
        }
    }

    fn clear(&mut self) {
        self.line.clear();
        self.ends.clear();
    }
}

/// The output of one shard: per-table bytes, the truth lines and counts.
#[derive(Debug)]
pub struct Sink {
    pub specs: &'static [TableSpec],
    pub bufs: Vec<Vec<u8>>,
    pub truth: Vec<u8>,
    pub stats: Vec<TableStats>,
    pub counters: BTreeMap<&'static str, u64>,
    shard: u64,
    seq: Vec<u64>,
    defect_rate: f64,
    pub row: Row,
}

impl Sink {
    pub fn new(specs: &'static [TableSpec], shard: u64, defect_rate: f64) -> Self {
        Self {
            specs,
            bufs: vec![Vec::new(); specs.len()],
            truth: Vec::new(),
            stats: vec![TableStats::default(); specs.len()],
            counters: BTreeMap::new(),
            shard,
            seq: vec![0; specs.len()],
            defect_rate,
            row: Row::default(),
        }
    }

    pub fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    /// A new meaningless record key for `table`, unique within it: SplitMix64 is a bijection.
    pub fn next_key(&mut self, table: usize) -> String {
        let n = (self.shard << 36) | self.seq[table];
        self.seq[table] += 1;
        format!("{:016x}", splitmix64(n ^ ((table as u64) << 58)))
    }

    /// Starts a row; the caller pushes fields then calls [`Sink::emit`].
    pub fn begin(&mut self) -> &mut Row {
        self.row.clear();
        &mut self.row
    }

    /// Writes the row built with [`Sink::begin`], maybe making it defective, and its truth line.
    pub fn emit(&mut self, table: usize, rng: &mut Rng, record_key: &str, person_key: Option<u64>) {
        let spec = &self.specs[table];
        let mut undecodable_at = None;
        if spec.defects && rng.chance(self.defect_rate) {
            let defect = self.make_defect(table, rng);
            if let Some(d) = defect {
                *self.stats[table].defective.entry(d).or_default() += 1;
                if d == "undecodable" {
                    undecodable_at = Some(self.row.start_of(1));
                }
            }
        }
        self.stats[table].rows += 1;
        let out = &mut self.bufs[table];
        let line = self.row.line.as_str();
        let split = undecodable_at.unwrap_or(line.len());
        encode_into(out, &line[..split], spec.encoding);
        if undecodable_at.is_some() {
            // 0xFF starts no character in UTF-8 nor in Shift_JIS.
            out.push(0xff);
        }
        encode_into(out, &line[split..], spec.encoding);
        out.push(b'\n');
        if let (true, Some(person)) = (spec.person_level, person_key) {
            // Writing into a Vec cannot fail.
            let _ = writeln!(
                self.truth,
                "{},{},{},P{:08}",
                spec.db, spec.table, record_key, person
            );
        }
    }

    fn make_defect(&mut self, table: usize, rng: &mut Rng) -> Option<&'static str> {
        let spec = &self.specs[table];
        let date_cols: Vec<usize> = ["birth_date", "exam_date", "admission_date"]
            .iter()
            .filter_map(|c| spec.col(c))
            .collect();
        let insurer = spec
            .col("insurer_no")
            .filter(|&i| !self.row.field(i).is_empty());
        match rng.below(4) {
            0 => {
                let last = self.row.ends.len() - 1;
                let cut = self.row.ends[last - 1];
                self.row.line.truncate(cut);
                self.row.ends.pop();
                Some("column_count")
            }
            1 if !date_cols.is_empty() => {
                let col = date_cols[0];
                // 平成31年5月1日 does not exist (令和 began that day); 2月30日 never does.
                let bad = if self.row.field(col).len() == 7 {
                    "4310501"
                } else {
                    "20230230"
                };
                self.row.replace(col, bad);
                Some("invalid_date")
            }
            2 if insurer.is_some() => {
                let col = insurer?;
                let mut digits: Vec<u8> = self.row.field(col).bytes().collect();
                let pos = rng.below(digits.len() as u64) as usize;
                if !digits[pos].is_ascii_digit() {
                    return None;
                }
                digits[pos] = b'0' + ((digits[pos] - b'0' + 1 + rng.below(9) as u8) % 10);
                let typo = String::from_utf8(digits).ok()?;
                self.row.replace(col, &typo);
                Some("invalid_insured_number")
            }
            3 => Some("undecodable"),
            _ => None,
        }
    }
}

fn encode_into(out: &mut Vec<u8>, text: &str, enc: Enc) {
    match enc {
        Enc::Utf8 => out.extend_from_slice(text.as_bytes()),
        Enc::Cp932 => {
            let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(text);
            out.extend_from_slice(&bytes);
        }
    }
}

/// Header line in the extract's encoding.
pub fn header_bytes(spec: &TableSpec) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, &spec.header.join(","), spec.encoding);
    out.push(b'\n');
    out
}
