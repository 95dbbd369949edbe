#![no_main]
//! See `redveil_fuzz::startup`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| redveil_fuzz::startup::check(data));
