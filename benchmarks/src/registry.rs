//! The person registry at national sizes: how long it takes to build, save and load, and
//! the memory it holds, so that its size at 130 million persons is a figure, not a guess.
//! Identifiers are random 32-byte values (what keyed hashes look like), one insured number
//! per person.

use std::path::Path;
use std::time::Instant;

use niji_store::Registry;

/// A fast stand-in for keyed hashes: 32 bytes from a counter through splitmix64.
fn random_id(seed: u64, i: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut x = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for chunk in out.chunks_exact_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

pub fn run(persons: &[u64], work: &Path, project_to: u64) -> anyhow::Result<()> {
    println!(
        "| persons | build | save | load | held after load | peak while building | bytes per person held |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut per_person = Vec::new();
    for &n in persons {
        let dir = work.join(format!("registry-{n}/_registry"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let before = crate::peak::resident_megabytes()?;
        crate::peak::reset()?;
        let t = Instant::now();
        let mut registry = Registry::load(&dir, "bench")?;
        registry.extend((0..n).map(|i| random_id(1, i)));
        for idx in 0..n {
            registry.remember_number(random_id(2, idx), idx as u32);
        }
        let build_s = t.elapsed().as_secs_f64();
        let building_peak = crate::peak::megabytes()? - before;
        let t = Instant::now();
        registry.save()?;
        let save_s = t.elapsed().as_secs_f64();
        drop(registry);
        let before = crate::peak::resident_megabytes()?;
        let t = Instant::now();
        let loaded = Registry::load(&dir, "bench")?;
        let load_s = t.elapsed().as_secs_f64();
        anyhow::ensure!(loaded.len() as u64 == n, "loaded {} of {n}", loaded.len());
        let held = crate::peak::resident_megabytes()? - before;
        drop(loaded);
        let bytes = held * 1_048_576.0 / n as f64;
        per_person.push(bytes);
        println!(
            "| {n} | {build_s:.1} s | {save_s:.1} s | {load_s:.1} s | {held:.0} MB | {building_peak:.0} MB | {bytes:.0} |"
        );
        std::fs::remove_dir_all(work.join(format!("registry-{n}")))?;
    }
    if let Some(bytes) = per_person.last() {
        println!(
            "at {project_to} persons, by the largest size's bytes per person: {:.1} GB held",
            bytes * project_to as f64 / 1e9
        );
    }
    Ok(())
}
