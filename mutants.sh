#!/usr/bin/env bash
# Mutation testing of the pure core (issue 10): every viable mutant of src/protocol,
# src/wire, src/wal and src/command should be caught by the unit tests, the two
# simulations and the fuzz corpus. Results go to mutants.out/ (missed.txt lists the
# survivors; docs/testing.md says why each that is left is harmless).
# Extra arguments go to cargo mutants, e.g. `./mutants.sh -f src/wal/record.rs`.
set -euo pipefail
cd "$(dirname "$0")"
exec cargo mutants --timeout 120 \
    -f 'src/protocol/*.rs' -f 'src/wire/*.rs' -f 'src/wal/*.rs' -f 'src/command/*.rs' \
    "$@" -- --lib --test sim --test two_pc_sim --test commit_rules --test fuzz_corpus
