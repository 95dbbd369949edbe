//! Runs every seed and every saved reproducer (`fuzz/regressions/<target>/`) through its
//! target's check, on stable Rust and without libFuzzer: a quick regression test of the
//! properties the fuzz targets check.
//!
//!     cd fuzz && cargo test --test replay

use std::path::Path;

#[test]
fn seeds_and_regressions_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ran = 0;
    for target in redveil_fuzz::TARGETS {
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| redveil_fuzz::check(target, &data));
                assert!(outcome.is_ok(), "{target} fails on {}", path.display());
                ran += 1;
            }
        }
    }
    assert!(ran > 100, "only {ran} inputs");
}
