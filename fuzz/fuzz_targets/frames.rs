//! `cargo +nightly fuzz run frames`: see `bank::fuzzing::frames` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bank::fuzzing::frames(data));
