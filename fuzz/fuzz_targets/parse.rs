//! `cargo +nightly fuzz run parse`: see `bank::fuzzing::parse` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bank::fuzzing::parse(data));
