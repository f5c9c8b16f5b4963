//! The fuzz corpus (`fuzz/corpus/<target>/`, checked in, grown by `cargo +nightly fuzz run
//! <target>`) replayed on stable through the same harness bodies as the fuzzer
//! (`bank::fuzzing`): what once found a bug, or covers a path, keeps being run.

use std::fs;
use std::path::PathBuf;

#[test]
fn every_corpus_input_holds_its_targets_rules() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, body) in bank::fuzzing::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{target}: the corpus is empty");
        for input in inputs {
            let data = fs::read(&input).expect("read corpus input");
            let caught = std::panic::catch_unwind(|| body(&data));
            assert!(caught.is_ok(), "{target}: {} breaks a rule", input.display());
        }
    }
}
