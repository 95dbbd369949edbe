#![no_main]
//! See `redveil_fuzz::splitter`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| redveil_fuzz::splitter::check(data));
