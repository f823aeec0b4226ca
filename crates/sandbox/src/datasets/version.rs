//! The data version of a standard dataset: what its bytes depend on, digested. The same
//! definition, disclosure policy, source tables and consent withdrawals give the same version,
//! and a build of one version gives the same bytes, so it is built once and shared.

use std::path::Path;

use niji_catalog::standard::Definition;
use niji_governance::Withdrawals;
use sha2::{Digest, Sha256};

use crate::SandboxError;

/// SHA-256 (hex) over niji's version, the definition's text, the policy that judges its file
/// (disclosure for counts, anonymisation for records), the content digest of each source table
/// in the store and the withdrawn registrations. A source table missing
/// from the store, or empty, is an error that names it.
pub(crate) fn data_version(
    definition: &Definition,
    policy: &str,
    data_dir: &Path,
    withdrawals: &Withdrawals,
) -> Result<String, SandboxError> {
    let store = niji_store::Store::new(data_dir);
    let mut h = Sha256::new();
    let mut field = |label: &str, value: &[u8]| {
        // Length-prefixed, so that no two different inputs digest alike.
        h.update(label.as_bytes());
        h.update((value.len() as u64).to_be_bytes());
        h.update(value);
    };
    field("niji standard dataset v1", b"");
    // The writer is part of the bytes (Parquet's created_by, its encoders): a new niji is a
    // new version, never a rebuild that cannot match what was handed out.
    field("niji", env!("CARGO_PKG_VERSION").as_bytes());
    field("definition", definition.text.as_bytes());
    let judged_by = if definition.dataset.is_record_level() {
        "anonymisation"
    } else {
        "disclosure"
    };
    field(judged_by, policy.as_bytes());
    let mut tables: Vec<&str> = definition
        .dataset
        .tables
        .iter()
        .map(|t| t.table.as_str())
        .collect();
    tables.sort_unstable();
    for table in tables {
        let (db, name) = table.split_once('.').unwrap_or((table, ""));
        let manifest = store
            .manifest(db, name)
            .map_err(|e| SandboxError::Refused(format!("{table}: {e}")))?
            .ok_or_else(|| {
                SandboxError::Refused(format!(
                    "{} reads {table}, which is not in the store",
                    definition.dataset.name
                ))
            })?;
        if manifest.rows == 0 {
            return Err(SandboxError::Refused(format!(
                "{} reads {table}, which has no rows in the store",
                definition.dataset.name
            )));
        }
        field(table, manifest.content_digest.as_bytes());
    }
    let mut withdrawn = withdrawals.research_ids.clone();
    withdrawn.sort_unstable();
    for id in &withdrawn {
        field("withdrawn", id.as_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
