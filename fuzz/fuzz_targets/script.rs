//! `cargo +nightly fuzz run script`: see `bank::fuzzing::script` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bank::fuzzing::script(data));
