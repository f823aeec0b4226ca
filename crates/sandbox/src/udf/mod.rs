//! The functions niji puts inside a project's views. They are never on the researcher's
//! allowlist: they exist only in view plans, which the researcher's plan cannot see into.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, StringArray, StringViewArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use niji_pseudo::ProjectPseudonyms;
use siphasher::sip::SipHasher13;

pub mod wire;

/// `person_idx` (UInt32) → project pseudonym (UInt64): one array lookup per row in the
/// dictionary built for the project and linkage group. A person outside the dictionary gets
/// null rather than a guessed value, or, `strict`, fails the query.
#[derive(Debug)]
pub struct PseudonymUdf {
    /// `project/group`: identity for plan equality (the dictionary is derived from it).
    label: String,
    dictionary: Arc<ProjectPseudonyms>,
    strict: bool,
    signature: Signature,
}

impl PseudonymUdf {
    /// The views' function: rows of persons the dictionary lacks show no pseudonym.
    pub fn new_udf(label: String, dictionary: Arc<ProjectPseudonyms>) -> ScalarUDF {
        Self::from_parts(label, dictionary, false)
    }

    /// Disclosure control's, which maps the person of each group of an aggregation regrouped
    /// from the pseudonym to the person (see [`niji_disclosure::Bounds::pseudonyms`]): persons
    /// the dictionary lacks would share one null pseudonym, one group, where the regrouped
    /// aggregation has a group each, so they fail the query instead.
    pub fn strict_udf(label: &str, dictionary: Arc<ProjectPseudonyms>) -> ScalarUDF {
        Self::from_parts(format!("{label}/strict"), dictionary, true)
    }

    fn from_parts(label: String, dictionary: Arc<ProjectPseudonyms>, strict: bool) -> ScalarUDF {
        ScalarUDF::from(Self {
            label,
            dictionary,
            strict,
            signature: Signature::exact(vec![DataType::UInt32], Volatility::Immutable),
        })
    }
}

/// DataFusion compares and hashes functions when it compares plans; these are the same
/// function exactly when they were built for the same project, mode and group (`label`).
macro_rules! identity_by_label {
    ($($t:ty),*) => {$(
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.label == other.label
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.label.hash(state);
            }
        }
    )*};
}
identity_by_label!(PseudonymUdf, RecordKeyUdf, PersonSetUdf);

fn one_array(args: ScalarFunctionArgs) -> Result<ArrayRef> {
    let rows = args.number_rows;
    match args.args.into_iter().next() {
        Some(v) => v.into_array(rows),
        None => exec_err!("missing argument"),
    }
}

/// The single person-index argument of the pseudonym and cohort functions.
fn person_index(args: ScalarFunctionArgs) -> Result<UInt32Array> {
    let input = one_array(args)?;
    input
        .as_any()
        .downcast_ref::<UInt32Array>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("person index is not UInt32".into()))
}

impl ScalarUDFImpl for PseudonymUdf {
    fn name(&self) -> &str {
        niji_catalog::PSEUDONYM_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let idx = person_index(args)?;
        let known = self.dictionary.len();
        // Every index of the registry snapshot is in the dictionary: one lookup per value,
        // nulls carried over as they are. Otherwise (a store newer than the snapshot) the
        // unknown persons become null, or fail a strict lookup.
        let out: UInt64Array = if idx.values().iter().all(|&i| (i as usize) < known) {
            arrow::compute::unary(&idx, |i| self.dictionary.get(i).unwrap_or_default())
        } else if self.strict {
            return exec_err!(
                "the store has persons the project's catalog was built without; run the query again"
            );
        } else {
            idx.iter()
                .map(|i| i.and_then(|i| self.dictionary.get(i)))
                .collect()
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Text record key → project record key (UInt64), keyed SipHash-1-3 with a key derived per
/// project: joins between a project's tables still work, joins with another project's output
/// do not, and a 64-bit key groups faster than the text.
#[derive(Debug)]
pub struct RecordKeyUdf {
    label: String,
    key: (u64, u64),
    signature: Signature,
}

impl RecordKeyUdf {
    pub fn new_udf(label: String, key: [u8; 16]) -> ScalarUDF {
        let (a, b) = key.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        Self::from_parts(label, (word(a), word(b)))
    }

    fn from_parts(label: String, key: (u64, u64)) -> ScalarUDF {
        ScalarUDF::from(Self {
            label,
            key,
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8, DataType::Utf8View],
                Volatility::Immutable,
            ),
        })
    }

    fn hash_one(&self, s: &str) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(s.as_bytes());
        h.finish()
    }
}

impl ScalarUDFImpl for RecordKeyUdf {
    fn name(&self) -> &str {
        "niji_record_key"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = one_array(args)?;
        let any = input.as_any();
        let out: UInt64Array = if let Some(a) = any.downcast_ref::<StringViewArray>() {
            a.iter().map(|s| s.map(|s| self.hash_one(s))).collect()
        } else if let Some(a) = any.downcast_ref::<StringArray>() {
            a.iter().map(|s| s.map(|s| self.hash_one(s))).collect()
        } else {
            return exec_err!("record key is not text");
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `person_idx` → whether the person is in a set (a bitmap): the project's approved cohort, or
/// the persons who withdrew consent. A row without a person is in neither.
#[derive(Debug)]
pub struct PersonSetUdf {
    name: &'static str,
    label: String,
    members: Arc<Vec<u64>>,
    signature: Signature,
}

impl PersonSetUdf {
    /// `niji_in_cohort`; `members` is a bitmap over person indexes.
    pub fn cohort(label: &str, members: Arc<Vec<u64>>) -> ScalarUDF {
        Self::named("niji_in_cohort", label, members)
    }

    /// `niji_withdrawn`; `members` is a bitmap over person indexes.
    pub fn withdrawn(label: &str, members: Arc<Vec<u64>>) -> ScalarUDF {
        Self::named("niji_withdrawn", label, members)
    }

    fn named(name: &'static str, label: &str, members: Arc<Vec<u64>>) -> ScalarUDF {
        Self::from_parts(name, format!("{label}/{name}"), members)
    }

    fn from_parts(name: &'static str, label: String, members: Arc<Vec<u64>>) -> ScalarUDF {
        ScalarUDF::from(Self {
            name,
            label,
            members,
            signature: Signature::exact(vec![DataType::UInt32], Volatility::Immutable),
        })
    }

    /// Bitmap of the given person indexes.
    pub fn bitmap(indexes: impl IntoIterator<Item = u32>) -> Vec<u64> {
        let mut bits: Vec<u64> = Vec::new();
        for i in indexes {
            let word = (i / 64) as usize;
            if bits.len() <= word {
                bits.resize(word + 1, 0);
            }
            bits[word] |= 1 << (i % 64);
        }
        bits
    }
}

impl ScalarUDFImpl for PersonSetUdf {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let idx = person_index(args)?;
        // A row without a person is in no set.
        let out: BooleanArray = idx
            .iter()
            .map(|i| {
                Some(i.is_some_and(|i| {
                    self.members
                        .get((i / 64) as usize)
                        .is_some_and(|w| w & (1 << (i % 64)) != 0)
                }))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_set_bitmap_marks_exactly_its_members() {
        let bits = PersonSetUdf::bitmap([0, 63, 64, 1000]);
        let has = |i: u32| {
            bits.get((i / 64) as usize)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
        };
        assert!(has(0) && has(63) && has(64) && has(1000));
        assert!(!has(1) && !has(65) && !has(999) && !has(5000));
    }

    /// A person the dictionary lacks (a store newer than the catalog): no pseudonym in a view,
    /// a failed query where disclosure control regrouped by the person.
    #[tokio::test]
    async fn a_person_outside_the_dictionary_has_no_pseudonym_or_fails_a_strict_lookup() {
        let key = niji_pseudo::CustodianKey::from_bytes([1; 32]);
        let dictionary = Arc::new(
            ProjectPseudonyms::build(&key, "p", "g", &[[0; 32], [1; 32]]).expect("dictionary"),
        );
        let lookup = |udf: ScalarUDF, sql: &'static str| async move {
            let ctx = datafusion::prelude::SessionContext::new();
            ctx.register_udf(udf);
            ctx.sql(sql).await?.collect().await
        };
        let known =
            "SELECT niji_pseudonym(arrow_cast(i, 'UInt32')) AS p FROM (VALUES (1), (NULL)) t(i)";
        let unknown =
            "SELECT niji_pseudonym(arrow_cast(i, 'UInt32')) AS p FROM (VALUES (1), (2)) t(i)";
        let pseudonyms = |batches: Vec<arrow::array::RecordBatch>| -> Vec<Option<u64>> {
            let column = batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .cloned();
            column.expect("UInt64").iter().collect()
        };
        let one = dictionary.get(1);
        let lenient = PseudonymUdf::new_udf("p".into(), dictionary.clone());
        let strict = PseudonymUdf::strict_udf("p", dictionary);
        let both = [lenient.clone(), strict.clone()];
        for udf in both {
            let rows = lookup(udf, known).await.expect("known persons");
            assert_eq!(pseudonyms(rows), vec![one, None]);
        }
        let rows = lookup(lenient, unknown).await.expect("lenient lookup");
        assert_eq!(pseudonyms(rows), vec![one, None]);
        let refused = lookup(strict, unknown).await.expect_err("strict lookup");
        assert!(
            refused.to_string().contains("run the query again"),
            "{refused}"
        );
    }

    #[test]
    fn record_keys_differ_across_project_keys_and_agree_within_one() {
        let udf = |k: u8| RecordKeyUdf {
            label: String::new(),
            key: (u64::from(k), 7),
            signature: Signature::exact(vec![], Volatility::Immutable),
        };
        assert_eq!(udf(1).hash_one("R0001"), udf(1).hash_one("R0001"));
        assert_ne!(udf(1).hash_one("R0001"), udf(2).hash_one("R0001"));
        assert_ne!(udf(1).hash_one("R0001"), udf(1).hash_one("R0002"));
    }
}
