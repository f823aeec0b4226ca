//! The byte forms of the views' functions, for an engine that runs plans in other processes
//! (Ballista). What travels is what the function computes with: a pseudonym dictionary (the
//! pseudonyms a view shows, by person index), a project's record key, a set of person indexes.
//! Never the custodian key, from which none of them can be turned back.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::ScalarUDF;
use niji_pseudo::ProjectPseudonyms;
use niji_store::wire::{WireWriter, read_tagged};

use super::{PersonSetUdf, PseudonymUdf, RecordKeyUdf};

const PSEUDONYM: &str = "niji.view.pseudonym.v1";
const RECORD_KEY: &str = "niji.view.record-key.v1";
const PERSON_SET: &str = "niji.view.person-set.v1";

/// The byte form of `udf` when it is one of the views' functions.
pub fn encode_view_function(udf: &ScalarUDF) -> Option<Vec<u8>> {
    let inner: &dyn std::any::Any = udf.inner().as_ref();
    if let Some(f) = inner.downcast_ref::<PseudonymUdf>() {
        let mut w = WireWriter::tagged(PSEUDONYM);
        w.text(&f.label)
            .u64(u64::from(f.strict))
            .u64s(f.dictionary.as_slice());
        return Some(w.finish());
    }
    if let Some(f) = inner.downcast_ref::<RecordKeyUdf>() {
        let mut w = WireWriter::tagged(RECORD_KEY);
        w.text(&f.label).u64(f.key.0).u64(f.key.1);
        return Some(w.finish());
    }
    if let Some(f) = inner.downcast_ref::<PersonSetUdf>() {
        let mut w = WireWriter::tagged(PERSON_SET);
        w.text(f.name).text(&f.label).u64s(&f.members);
        return Some(w.finish());
    }
    None
}

/// The function `bytes` encode, or `None` when they are not a view function's form.
pub fn decode_view_function(bytes: &[u8]) -> Result<Option<ScalarUDF>> {
    read_tagged(
        bytes,
        |tag| [PSEUDONYM, RECORD_KEY, PERSON_SET].contains(&tag),
        |tag, r| {
            Ok(match tag {
                PSEUDONYM => {
                    let label = r.text()?;
                    let strict = r.u64()? == 1;
                    let dictionary = ProjectPseudonyms::from_pseudonyms(r.u64s()?);
                    PseudonymUdf::from_parts(label, Arc::new(dictionary), strict)
                }
                RECORD_KEY => {
                    let label = r.text()?;
                    RecordKeyUdf::from_parts(label, (r.u64()?, r.u64()?))
                }
                _ => {
                    let name = match r.text()?.as_str() {
                        "niji_in_cohort" => "niji_in_cohort",
                        "niji_withdrawn" => "niji_withdrawn",
                        other => {
                            return Err(format!("{other} is not a person set of a view").into());
                        }
                    };
                    let label = r.text()?;
                    PersonSetUdf::from_parts(name, label, Arc::new(r.u64s()?))
                }
            })
        },
    )
    .map_err(DataFusionError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each function comes back the same function (equal, as plans compare them) and computes
    /// the same values.
    #[tokio::test]
    async fn view_functions_travel_and_compute_alike() {
        let key = niji_pseudo::CustodianKey::from_bytes([3; 32]);
        let dictionary = Arc::new(
            ProjectPseudonyms::build(&key, "p", "g", &[[0; 32], [1; 32], [2; 32]])
                .expect("dictionary"),
        );
        let functions = [
            PseudonymUdf::new_udf("p/real/g".into(), dictionary.clone()),
            PseudonymUdf::strict_udf("p/real/g", dictionary),
            RecordKeyUdf::new_udf("p/real".into(), [7; 16]),
            PersonSetUdf::cohort("p/real", Arc::new(PersonSetUdf::bitmap([0, 2]))),
            PersonSetUdf::withdrawn("p/real", Arc::new(PersonSetUdf::bitmap([1]))),
        ];
        for udf in functions {
            let bytes = encode_view_function(&udf).expect("a view function");
            let back = decode_view_function(&bytes)
                .expect("decodes")
                .expect("a view function");
            assert_eq!(back, udf, "{}", udf.name());
            let sql = if udf.name() == "niji_record_key" {
                format!(
                    "SELECT {}(s) AS v FROM (VALUES ('R1'), ('R2'), (NULL)) t(s)",
                    udf.name()
                )
            } else {
                format!(
                    "SELECT {}(arrow_cast(i, 'UInt32')) AS v FROM (VALUES (0), (1), (2), (NULL)) t(i)",
                    udf.name()
                )
            };
            let run = |f: ScalarUDF| {
                let sql = sql.clone();
                async move {
                    let ctx = datafusion::prelude::SessionContext::new();
                    ctx.register_udf(f);
                    ctx.sql(&sql).await?.collect().await
                }
            };
            let (a, b) = (run(udf.clone()).await, run(back).await);
            assert_eq!(
                format!("{:?}", a.expect("original")),
                format!("{:?}", b.expect("decoded")),
                "{}",
                udf.name()
            );
            assert!(
                decode_view_function(&bytes[..bytes.len() - 1]).is_err(),
                "a damaged form is refused"
            );
        }
        assert!(
            decode_view_function(b"something else")
                .expect("not ours")
                .is_none()
        );
    }
}
