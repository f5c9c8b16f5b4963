//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs` call these), here so that a
//! stable `cargo test` replays the checked-in corpus through the very same code
//! (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes and panics only when a rule is
//! broken: never on input, however hostile.

use crate::command::parse_line;
use crate::protocol::Record;
use crate::wal::{decode_prefix, encode_record};
use crate::wire::{encode_frame, FrameDecoder, MAX_FRAME};

/// A target's body: takes any bytes, panics only when a rule breaks.
pub type Target = fn(&[u8]);

/// The targets, by the name of their corpus directory.
pub const TARGETS: [(&str, Target); 4] =
    [("parse", parse), ("frames", frames), ("wal", wal), ("script", script)];

/// Every line of `data` through the command parser: a command or a reason, and an
/// error message that is one short line of printable text.
pub fn parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for (i, line) in text.lines().enumerate() {
        if let Err(e) = parse_line(i + 1, line) {
            let msg = e.to_string();
            assert!(msg.chars().all(|c| (' '..='~').contains(&c)), "unprintable: {msg:?}");
            assert!(msg.len() < 600, "{} bytes: {msg}", msg.len());
        }
    }
}

/// `data` as a stream of frames, fed in pieces whose sizes the first byte picks: the
/// decoder yields messages or one error, never a panic, and every message it yields
/// encodes back to frames that decode to it again.
pub fn frames(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut dec = FrameDecoder::new();
    dec.set_limit(4 * MAX_FRAME);
    for piece in rest.chunks(step) {
        dec.extend(piece);
        loop {
            match dec.next_message() {
                Ok(Some(msg)) => {
                    let mut bytes = Vec::new();
                    encode_frame(&msg, &mut bytes);
                    let mut again = FrameDecoder::new();
                    again.extend(&bytes);
                    assert_eq!(again.next_message(), Ok(Some(msg)));
                    assert_eq!(again.pending(), 0);
                }
                Ok(None) => break,
                Err(_) => return, // a corrupt stream closes the link
            }
        }
    }
}

/// `data` as a node's log: replay keeps a clean prefix (every record whole and
/// checksummed), says how much it cut, and the records it kept encode to that prefix's
/// records again.
pub fn wal(data: &[u8]) {
    let replay = decode_prefix::<Record>(data);
    assert_eq!(replay.valid_len + replay.torn, data.len());
    let mut bytes = Vec::new();
    for rec in &replay.records {
        encode_record(rec, &mut bytes).expect("a record that decoded encodes");
    }
    assert_eq!(decode_prefix::<Record>(&bytes).records, replay.records);
}

/// `data` as a command file, run through the parser, the master's ledger and the nodes'
/// machines in one process (`crate::replay`): no rule of the model may break.
pub fn script(data: &[u8]) {
    // Big node counts and long drains are the benchmark's business, not the fuzzer's.
    let text = String::from_utf8_lossy(&data[..data.len().min(4096)]);
    if let Err(v) = crate::replay::run(&text, 7) {
        panic!("{v}\n--- script\n{text}");
    }
}
