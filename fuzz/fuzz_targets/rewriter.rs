#![no_main]
//! See `redveil_fuzz::rewriter`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| redveil_fuzz::rewriter::check(data));
