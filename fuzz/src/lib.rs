//! The checks behind the fuzz targets, one module per target, so the targets stay one line
//! each and `tests/replay.rs` can run every seed and reproducer on stable Rust.
//!
//! Every check returns normally for any input; a broken property panics, which libFuzzer
//! reports as a crash with the input that caused it.

pub mod alloc;
pub mod catalog;
pub mod decoder;
pub mod rewriter;
pub mod splitter;
pub mod startup;

/// The fuzz targets, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: [&str; 4] = ["decoder", "startup", "splitter", "rewriter"];

/// Runs the check of `target` on `data`.
pub fn check(target: &str, data: &[u8]) {
    match target {
        "decoder" => decoder::check(data),
        "startup" => startup::check(data),
        "splitter" => splitter::check(data),
        "rewriter" => rewriter::check(data),
        other => panic!("no fuzz target {other}"),
    }
}
