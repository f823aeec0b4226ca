//! `niji-bench pseudonym`: project pseudonyms over the stored receipts, an HMAC per row against
//! a per-project dictionary looked up by person index, and distinct-person counting on each.

use std::time::Instant;

use anyhow::Context as _;
use arrow::array::{Array, StringArray, UInt32Array};
use niji_pseudo::{CustodianKey, IdHasher};
use niji_store::Store;

use crate::Context;

pub fn run(ctx: &Context) -> anyhow::Result<()> {
    let key = CustodianKey::load(&ctx.key_file)?;
    let store = Store::new(&ctx.data_dir);
    let registry = niji_store::Registry::load(&store.registry_dir(), &key.version())?;
    let mut id5s: Vec<String> = Vec::new();
    let mut idx: Vec<u32> = Vec::new();
    for b in store.read_columns("ndb", "receipts", &["id5", "person_idx"])? {
        let id5 = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .context("id5 is not text")?;
        let pi = b
            .column(1)
            .as_any()
            .downcast_ref::<UInt32Array>()
            .context("person_idx is not UInt32")?;
        for i in (0..b.num_rows()).filter(|&i| pi.is_valid(i)) {
            id5s.push(id5.value(i).to_string());
            idx.push(pi.value(i));
        }
    }
    let rows = idx.len() as f64;
    // Per row: HMAC of the stored ID5 under a project key, shown as 64 hex digits.
    let hasher = IdHasher::from_key_bytes(key.derive_labelled(b"niji/bench/project").as_ref());
    let t = Instant::now();
    let hex: Vec<String> = id5s
        .iter()
        .map(|id| niji_pseudo::hex32(&hasher.hash(&[id.as_bytes()])))
        .collect();
    let per_row = t.elapsed().as_secs_f64();
    // Per person once, then one lookup per row.
    let t = Instant::now();
    let dict = niji_pseudo::ProjectPseudonyms::build(&key, "bench", "ndb", registry.ids())?;
    let build = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mapped: Vec<u64> = idx
        .iter()
        .map(|&i| dict.get(i).unwrap_or(u64::MAX))
        .collect();
    let lookup = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let distinct_hex = hex.iter().collect::<std::collections::HashSet<_>>().len();
    let count_hex = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let distinct_u64 = mapped
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let count_u64 = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        distinct_hex == distinct_u64,
        "the two forms disagree on the number of persons"
    );
    println!(
        "{} receipts of {} persons ({} in the registry), one core",
        idx.len(),
        distinct_u64,
        registry.len()
    );
    println!("{:<52} {:>10} {:>12}", "step", "seconds", "M rows/s");
    let line = |name: &str, s: f64| println!("{name:<52} {s:>10.3} {:>12.1}", rows / s / 1e6);
    line("HMAC per row, 64-hex pseudonym", per_row);
    println!(
        "{:<52} {build:>10.3} {:>12}",
        "dictionary: HMAC per person, once per project", "-"
    );
    line("dictionary lookup per row, 8-byte pseudonym", lookup);
    line("distinct persons over 64-hex strings", count_hex);
    line("distinct persons over 8-byte pseudonyms", count_u64);
    println!(
        "per-row mapping: {:.1}x faster; distinct count: {:.1}x faster",
        per_row / lookup,
        count_hex / count_u64
    );
    Ok(())
}
