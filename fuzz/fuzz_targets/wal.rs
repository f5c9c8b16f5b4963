//! `cargo +nightly fuzz run wal`: see `bank::fuzzing::wal` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bank::fuzzing::wal(data));
