//! A table's strata: each distinct combination of its coded columns' values (sex, prefecture,
//! setting, a diagnosis code and its flags…) is a stratum, numbered in the order ingest meets
//! it; the store keeps, per stratum, those values and the persons and facilities of its rows
//! and their totals of |value|.
//!
//! A cell grouped and filtered on coded columns only is a union of whole strata: which strata,
//! its grouping and filter tell when computed on the strata's values, and its persons,
//! facilities and totals are those of its strata, found without reading a row.

use std::collections::BTreeMap;
use std::io::Cursor;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use roaring::RoaringBitmap;

/// The most strata a table has (a stratum's number fits below it): tables whose coded columns
/// would make more keep the widest of them out of their strata.
pub const MAX_STRATA: usize = 1 << 16;

/// What the store keeps of each stratum of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Strata {
    /// Row `i`: stratum `i`'s values of the stored columns that make a stratum, typed and
    /// named as stored.
    pub values: RecordBatch,
    /// Per stratum, the person indexes of its rows (rows of no person are in none).
    pub persons: Vec<RoaringBitmap>,
    /// Per stratum, the facility marks of its rows.
    pub facilities: Vec<RoaringBitmap>,
    /// Per numeric column, each stratum's total of |value| (a null adds nothing).
    pub totals: BTreeMap<String, Vec<f64>>,
    /// Per person index, a facility of the person's rows ([`NO_FACILITY`]: none), for groups
    /// of one person that read all of the person's rows.
    pub a_facility: Vec<u32>,
}

/// A person without a row of a facility in the table, or beyond its persons.
pub const NO_FACILITY: u32 = u32::MAX;

const MAGIC: &[u8; 8] = b"nijistr2";

#[derive(Debug, thiserror::Error)]
#[error("strata file: {0}")]
pub struct StrataError(String);

impl Strata {
    pub fn len(&self) -> usize {
        self.persons.len()
    }

    pub fn is_empty(&self) -> bool {
        self.persons.is_empty()
    }

    /// The stored columns whose values make a stratum.
    pub fn columns(&self) -> Vec<String> {
        let schema = self.values.schema();
        schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    /// The file form: a magic, the values (one Arrow IPC stream, their columns named), each stratum's
    /// two sets (roaring's portable form), each numeric column's totals, then each person's
    /// facility; lengths as little-endian u32.
    pub fn encode(&self) -> Result<Vec<u8>, StrataError> {
        let mut out = MAGIC.to_vec();
        let put_len =
            |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_le_bytes());
        let put_text = |out: &mut Vec<u8>, s: &str| {
            put_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        };
        let values = (|| {
            let mut writer = StreamWriter::try_new(Vec::new(), &self.values.schema())?;
            writer.write(&self.values)?;
            writer.finish()?;
            writer.into_inner()
        })()
        .map_err(|e| StrataError(format!("values: {e}")))?;
        put_len(&mut out, values.len());
        out.extend_from_slice(&values);
        put_len(&mut out, self.len());
        for set in self.persons.iter().chain(&self.facilities) {
            put_len(&mut out, set.serialized_size());
            // Writing to a Vec cannot fail.
            let _ = set.serialize_into(&mut out);
        }
        put_len(&mut out, self.totals.len());
        for (name, totals) in &self.totals {
            put_text(&mut out, name);
            for t in totals {
                out.extend_from_slice(&t.to_le_bytes());
            }
        }
        put_len(&mut out, self.a_facility.len());
        for f in &self.a_facility {
            out.extend_from_slice(&f.to_le_bytes());
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StrataError> {
        let mut rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| StrataError("not a strata file".into()))?;
        let short = || StrataError("cut short".into());
        fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            *rest = tail;
            Some(head)
        }
        let len = |rest: &mut &[u8]| -> Option<usize> {
            Some(u32::from_le_bytes(take(rest, 4)?.try_into().ok()?) as usize)
        };
        let text = |rest: &mut &[u8]| -> Option<String> {
            let n = len(rest)?;
            String::from_utf8(take(rest, n)?.to_vec()).ok()
        };
        let set = |rest: &mut &[u8]| -> Option<RoaringBitmap> {
            let n = len(rest)?;
            RoaringBitmap::deserialize_from(take(rest, n)?).ok()
        };
        let values = len(&mut rest)
            .and_then(|n| take(&mut rest, n))
            .ok_or_else(short)?;
        let values = StreamReader::try_new(Cursor::new(values), None)
            .ok()
            .and_then(|mut r| r.next()?.ok())
            .ok_or_else(|| StrataError("values unreadable".into()))?;
        let n = len(&mut rest).ok_or_else(short)?;
        if n > MAX_STRATA {
            return Err(StrataError(format!("{n} strata")));
        }
        let persons = (0..n)
            .map(|_| set(&mut rest))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(short)?;
        let facilities = (0..n)
            .map(|_| set(&mut rest))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(short)?;
        let mut totals = BTreeMap::new();
        for _ in 0..len(&mut rest).ok_or_else(short)? {
            let name = text(&mut rest).ok_or_else(short)?;
            let values = take(&mut rest, 8 * n)
                .ok_or_else(short)?
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
                .collect();
            totals.insert(name, values);
        }
        let persons_len = len(&mut rest).ok_or_else(short)?;
        let a_facility = take(
            &mut rest,
            4usize.checked_mul(persons_len).ok_or_else(short)?,
        )
        .ok_or_else(short)?
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
        .collect();
        if !rest.is_empty() {
            return Err(StrataError("bytes after the persons' facilities".into()));
        }
        if values.num_rows() != n {
            return Err(StrataError("values are not the strata's".into()));
        }
        Ok(Self {
            values,
            persons,
            facilities,
            totals,
            a_facility,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use arrow::array::{BooleanArray, StringArray};

    #[test]
    fn strata_read_back_as_written_and_a_cut_file_is_refused() {
        let values = RecordBatch::try_from_iter([
            (
                "sex",
                Arc::new(StringArray::from(vec![Some("1"), None])) as _,
            ),
            (
                "inpatient",
                Arc::new(BooleanArray::from(vec![true, false])) as _,
            ),
        ])
        .expect("values");
        let strata = Strata {
            values,
            persons: vec![[1, 5, 70_000].into_iter().collect(), RoaringBitmap::new()],
            facilities: vec![[9].into_iter().collect(), [3, 4].into_iter().collect()],
            totals: [("points".to_string(), vec![12.5, 0.0])].into(),
            a_facility: vec![NO_FACILITY, 9, NO_FACILITY, NO_FACILITY, NO_FACILITY, 3],
        };
        let bytes = strata.encode().expect("encodes");
        assert_eq!(Strata::decode(&bytes).expect("decodes"), strata);
        assert_eq!(strata.columns(), ["sex", "inpatient"]);
        let mut fewer = strata;
        fewer.values = fewer.values.slice(0, 1);
        let fewer = fewer.encode().expect("encodes");
        assert!(Strata::decode(&fewer).is_err(), "values of fewer strata");
        for cut in [0, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(Strata::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(Strata::decode(&longer).is_err());
    }
}
