//! `niji-bench hmac`: keyed identifier hashing (HMAC-SHA256) per second, on one core and on all.

use std::time::Instant;

use niji_pseudo::{CustodianKey, IdHasher, IdKind};
use rayon::prelude::*;

pub fn run(count: u64) -> anyhow::Result<()> {
    let key = CustodianKey::generate()?;
    let hasher = IdHasher::new(&key, IdKind::Id1);
    // A realistic ID1 input: insurer, symbol, number, birth date, sex (about 40 bytes).
    let run = |range: std::ops::Range<u64>| {
        let mut number = *b"100000000";
        for i in range {
            // A different card number each time, written without allocating.
            let mut v = i;
            for d in number.iter_mut().rev().take(8) {
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
            // black_box: the optimiser may not drop a result nobody reads.
            std::hint::black_box(hasher.hash(&[b"06130124", b"1234", &number, b"19550412", b"1"]));
        }
    };
    let t = Instant::now();
    let single = count / 4;
    run(0..single);
    let one_core = single as f64 / t.elapsed().as_secs_f64();
    let threads = rayon::current_num_threads() as u64;
    let t = Instant::now();
    (0..threads)
        .into_par_iter()
        .for_each(|k| run(k * count / threads..(k + 1) * count / threads));
    let all = count as f64 / t.elapsed().as_secs_f64();
    println!(
        "HMAC-SHA256 (ID1 input, {} bytes, precomputed key schedule)",
        b"06130124\x1f1234\x1f100000000\x1f19550412\x1f1".len()
    );
    println!("  one core : {:>6.2} M/s", one_core / 1e6);
    println!(
        "  {threads} cores  : {:>6.2} M/s ({:.2} M/s per core)",
        all / 1e6,
        all / threads as f64 / 1e6
    );
    println!(
        "  target   : >= 5.00 M/s per core; {}",
        if one_core >= 5e6 { "MET" } else { "NOT MET" }
    );
    Ok(())
}
