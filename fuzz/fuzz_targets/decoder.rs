#![no_main]
//! See `redveil_fuzz::decoder`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| redveil_fuzz::decoder::check(data));
