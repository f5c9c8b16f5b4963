//! The checkpointed log against crashes written by hand: every state a crash can leave
//! in either file must reopen to the old segment or the new one, never to less, never to
//! stale records, and damage must be refused where it is, not cut.

use super::*;
use crate::wal::appender::PREALLOCATE;
use crate::wal::segment::ScannedRecord;
use crate::wal::torn::{Fault, SECTOR};
use crate::wal::WalFile;
use serde::Deserialize;
use std::fs::OpenOptions;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Rec {
    /// What a node would write at a checkpoint; `pad` makes it span sectors.
    Checkpoint {
        ops: u64,
        pad: Vec<u8>,
    },
    Op(u64, String),
}

const NODE: u64 = 3;

fn checkpoint(ops: u64, size: usize) -> Rec {
    Rec::Checkpoint { ops, pad: (0..size).map(|i| (i % 251) as u8 + 1).collect() }
}

fn op(n: u64) -> Rec {
    Rec::Op(n, "x".repeat((n * 37 % 90) as usize))
}

/// A temporary directory with the log's two files, removed on drop (even after a
/// failed assertion).
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("bank-cwal-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    Dir(p)
}

impl Dir {
    fn path(&self, i: usize) -> PathBuf {
        self.0.join(format!("node-{NODE}.{i}.wal"))
    }

    fn files(&self) -> [File; 2] {
        [0, 1].map(|i| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.path(i))
                .unwrap()
        })
    }

    fn open(&self) -> Result<(CheckpointedWal<Rec>, Recovered<Rec>), WalError> {
        CheckpointedWal::open(self.files(), NODE, "node 3 log")
    }

    fn bytes(&self) -> [Vec<u8>; 2] {
        [0, 1].map(|i| std::fs::read(self.path(i)).unwrap_or_default())
    }

    /// Writes a crash's state into the two files.
    fn set(&self, state: [&[u8]; 2]) {
        for (i, bytes) in state.iter().enumerate() {
            std::fs::write(self.path(i), bytes).unwrap();
        }
    }
}

fn scan(bytes: &[u8]) -> SegmentScan<Rec> {
    scan_segment(bytes).unwrap()
}

// Durability across checkpoints: each reopen gives exactly the live segment's records,
// numbered on from the log's first record, and the counters say where the log stands.
#[test]
fn records_survive_reopen_across_checkpoints_with_their_numbers() {
    let d = dir("reopen");
    let (mut w, got) = d.open().unwrap();
    assert_eq!(got, Recovered { records: vec![], first_number: 0, segment: 0 });
    assert!(w.is_empty() && !w.is_dirty());
    let mut next = 0u64; // the next record's number
    let mut live: Vec<Rec> = Vec::new();
    for round in 0..5u64 {
        for _ in 0..7 {
            assert_eq!(w.next_number(), next);
            let rec = op(next);
            w.append(&rec).unwrap();
            live.push(rec);
            next += 1;
        }
        w.append(&op(999)).unwrap();
        w.commit().unwrap();
        live.push(op(999));
        next += 1;
        assert_eq!(w.since_checkpoint(), 8, "round {round}: the checkpoint not counted");
        drop(w);
        let (again, got) = d.open().unwrap();
        w = again;
        assert_eq!((got.records, got.segment), (live.clone(), round));
        assert_eq!(got.first_number, next - live.len() as u64);
        assert_eq!((w.first_number(), w.next_number()), (got.first_number, next));

        let ckpt = checkpoint(next, 100 * round as usize);
        w.checkpoint(&ckpt).unwrap();
        assert_eq!((w.segment(), w.first_number(), w.since_checkpoint()), (round + 1, next, 0));
        let sizes = d.bytes().map(|b| b.len() as u64);
        assert_eq!(sizes[(round as usize) % 2], 0, "round {round}: the old file is emptied");
        assert_eq!(sizes[1 - (round as usize) % 2], PREALLOCATE, "header, checkpoint, zeros");
        live = vec![ckpt];
        next += 1;
        drop(w);
        let (again, got) = d.open().unwrap();
        w = again;
        assert_eq!(got.records, live);
        assert_eq!((got.first_number, got.segment), (next - 1, round + 1));
    }
    // A dump of the live file says the same.
    let live_file = &d.bytes()[1];
    let s = scan(live_file);
    assert_eq!(s.header, Some(SegmentHeader::new(NODE, 5, next - 1)));
    assert_eq!(s.records.iter().map(|r| r.number).collect::<Vec<_>>(), vec![next - 1]);
}

/// A log stopped just before a checkpoint, and the bytes that checkpoint writes: the
/// old live segment (file 1, segment 1), the segment 0 that file 0 held before the
/// first checkpoint emptied it, the new segment (file 0, segment 2), and the records
/// each holds.
struct Checkpointing {
    old: Vec<u8>,
    stale: Vec<u8>,
    new: Vec<u8>,
    old_records: Vec<Rec>,
    new_records: Vec<Rec>,
    /// Where the new segment's checkpoint frame ends.
    new_end: usize,
}

fn checkpointing(d: &Dir) -> Checkpointing {
    let (mut w, _) = d.open().unwrap();
    for n in 0..5 {
        w.append(&op(n)).unwrap();
    }
    w.commit().unwrap();
    let stale = d.bytes()[0].clone();
    let c1 = checkpoint(5, 300);
    w.checkpoint(&c1).unwrap();
    let mut old_records = vec![c1];
    for n in 6..12 {
        w.append(&op(n)).unwrap();
        old_records.push(op(n));
    }
    w.commit().unwrap();
    let [empty, old] = d.bytes();
    assert!(empty.is_empty());
    let c2 = checkpoint(12, 4096);
    w.checkpoint(&c2).unwrap();
    let [new, empty] = d.bytes();
    assert!(empty.is_empty());
    let new_end = scan(&new).end.valid_to() as usize;
    Checkpointing { old, stale, new, old_records, new_records: vec![c2], new_end }
}

/// Opens a crash's state; checks it recovers `want` (segment and records), that it goes
/// on from there (a record, a reopen), and that the next checkpoint leaves only itself.
fn recovers(d: &Dir, state: [&[u8]; 2], want: (u64, &[Rec]), what: &str) {
    d.set(state);
    let (mut w, got) = d.open().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!((got.segment, got.records.as_slice()), want, "{what}");
    w.append(&op(100)).unwrap();
    w.commit().unwrap();
    drop(w);
    let (mut w, got) = d.open().unwrap();
    assert_eq!(got.records.len(), want.1.len() + 1, "{what}: appends follow the live records");
    assert_eq!(got.records.last(), Some(&op(100)), "{what}");
    w.checkpoint(&checkpoint(101, 10)).unwrap();
    drop(w);
    let (_, got) = d.open().unwrap();
    assert_eq!((got.segment, got.records), (want.0 + 1, vec![checkpoint(101, 10)]), "{what}");
    let sizes = d.bytes().map(|b| b.len());
    assert!(sizes.contains(&0), "{what}: the stale file is emptied ({sizes:?})");
}

// Crash safety of a checkpoint: every state a crash can leave between its steps
// recovers the old segment (the new one missing or torn) or the new one (forced).
#[test]
fn a_crash_at_every_step_of_a_checkpoint_recovers_old_or_new() {
    let d = dir("crash");
    let c = checkpointing(&d);
    let old = (1, c.old_records.as_slice());
    let new = (2, c.new_records.as_slice());
    // Step 1: the other file not yet emptied (the previous checkpoint's step 4 never
    // happened), or emptied.
    recovers(&d, [&c.stale, &c.old], old, "stale segment 0 beside segment 1");
    recovers(&d, [&[], &c.old], old, "other file emptied");
    // Step 2, not forced: the new segment's write reached the disk up to any byte
    // (opened at every cut; carried on from, at a sample and around the checkpoint's end).
    for cut in (0..=c.new_end + 2 * SECTOR).chain([c.new.len()]) {
        let want = if cut < c.new_end { old } else { new };
        let what = format!("new segment cut at {cut}");
        if cut % 61 == 0 || cut.abs_diff(c.new_end) <= 1 || cut == c.new.len() {
            recovers(&d, [&c.new[..cut], &c.old], want, &what);
        } else {
            d.set([&c.new[..cut], &c.old]);
            let (_, got) = d.open().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!((got.segment, got.records.as_slice()), want, "{what}");
        }
    }
    // ...or with any one sector never written (it reads as zeros).
    for sector in (0..c.new_end).step_by(SECTOR) {
        let mut torn = c.new.clone();
        torn[sector..sector + SECTOR].fill(0);
        recovers(&d, [&torn, &c.old], old, &format!("new segment without sector {sector}"));
    }
    // Step 2 forced, before or after step 4 truncated the old file.
    recovers(&d, [&c.new, &c.old], new, "both segments whole");
    recovers(&d, [&c.new, &[]], new, "old file emptied");
}

// A new log checkpointed before its first commit: segment 0 is made to count first, so
// a torn segment 1 leaves an empty log, not a lost one.
#[test]
fn a_checkpoint_before_any_commit_leaves_a_segment_to_recover() {
    let d = dir("early");
    let (mut w, _) = d.open().unwrap();
    w.checkpoint(&checkpoint(0, 2000)).unwrap();
    drop(w);
    let (_, got) = d.open().unwrap();
    assert_eq!(got, Recovered { records: vec![checkpoint(0, 2000)], first_number: 0, segment: 1 });
    // The crash before segment 1 was forced: segment 0's header alone, segment 1 torn.
    let [emptied, seg1] = d.bytes();
    assert!(emptied.is_empty());
    let mut header_only = Vec::new();
    crate::wal::encode_record(&SegmentHeader::new(NODE, 0, 0), &mut header_only).unwrap();
    let torn = &seg1[..scan(&seg1).end.valid_to() as usize - 1];
    recovers(&d, [&header_only, torn], (0, &[]), "segment 0 empty, segment 1 torn");
}

/// A live segment (file 1, segment 1) whose records end without zeros ahead, and each
/// record's frame start.
fn live_segment_bytes(d: &Dir) -> (Vec<u8>, Vec<ScannedRecord<Rec>>) {
    let (mut w, _) = d.open().unwrap();
    w.append(&op(0)).unwrap();
    w.commit().unwrap();
    w.checkpoint(&checkpoint(1, 700)).unwrap();
    for n in 2..9 {
        w.append(&op(n)).unwrap();
        if n % 3 == 0 {
            w.commit().unwrap();
        }
    }
    w.commit().unwrap();
    let [zero, live] = d.bytes();
    assert!(zero.is_empty());
    let s = scan(&live);
    let valid = s.end.valid_to() as usize;
    (live[..valid].to_vec(), s.records)
}

// Torn tail: the live segment cut at every byte opens to the records wholly before the
// cut, the scan says where the torn frame starts, opening cuts the file there, and
// appends follow. Cut inside the header the log is new again; inside the checkpoint,
// lost (nothing else holds the log).
#[test]
fn truncating_the_live_segment_at_every_byte_is_a_torn_tail_opening_cuts() {
    let d = dir("cut");
    let (live, recs) = live_segment_bytes(&d);
    let ckpt_end = (recs[0].offset + recs[0].size) as usize;
    for cut in 0..=live.len() {
        let bytes = &live[..cut];
        d.set([&[], bytes]);
        let whole: Vec<&ScannedRecord<Rec>> =
            recs.iter().filter(|r| (r.offset + r.size) as usize <= cut).collect();
        let at_boundary = cut == live.len() || recs.iter().any(|r| r.offset as usize == cut);
        if cut < recs[0].offset as usize {
            let (_, got) = d.open().unwrap();
            assert_eq!(
                got,
                Recovered { records: vec![], first_number: 0, segment: 0 },
                "cut {cut}"
            );
            continue;
        }
        let s = scan(bytes);
        assert_eq!(s.records.len(), whole.len(), "cut {cut}");
        if at_boundary {
            assert_eq!(s.end, LogEnd::Clean { valid_to: cut as u64, zeros_ahead: 0 }, "cut {cut}");
        } else {
            let from = recs[whole.len()].offset;
            let want =
                LogEnd::Torn { offset: from, bytes: cut as u64 - from, fault: Fault::RunsPastEnd };
            assert_eq!(s.end, want, "cut {cut}");
        }
        if cut < ckpt_end {
            assert!(matches!(d.open(), Err(WalError::Lost { .. })), "cut {cut}");
            continue;
        }
        let (mut w, got) = d.open().unwrap();
        let want: Vec<Rec> = whole.iter().map(|r| r.record.clone()).collect();
        assert_eq!(got.records, want, "cut {cut}");
        assert_eq!(d.bytes()[1].len() as u64, s.end.valid_to(), "cut {cut}: torn tail cut off");
        w.append(&op(50)).unwrap();
        w.commit().unwrap();
        let (_, again) = d.open().unwrap();
        assert_eq!(again.records.len(), want.len() + 1, "cut {cut}");
        assert_eq!(again.records.last(), Some(&op(50)));
    }
}

// A torn write inside the zeros ahead: the batch's later frames reached the disk, an
// earlier sector did not. Opening cuts from the torn frame, and nothing after it, intact
// as it looks, ever comes back: not at once, nor after shorter records are written.
#[test]
fn records_after_a_torn_frame_never_reappear() {
    let d = dir("after-torn");
    let (mut w, _) = d.open().unwrap();
    for n in 0..3 {
        w.append(&op(n)).unwrap();
    }
    w.commit().unwrap();
    let before = w.len() as usize;
    for n in 3..40 {
        w.append(&op(n)).unwrap();
    }
    w.commit().unwrap();
    drop(w);
    let [mut bytes, _] = d.bytes();
    let hole = (before / SECTOR + 1) * SECTOR; // a sector of the second batch
    bytes[hole..hole + SECTOR].fill(0);
    let s = scan(&bytes);
    let torn_at = s.end.valid_to() as usize;
    assert!(matches!(s.end, LogEnd::Torn { .. }) && torn_at < hole + SECTOR, "{:?}", s.end);
    d.set([&bytes, &[]]);
    let (mut w, got) = d.open().unwrap();
    let kept = got.records.len();
    assert_eq!(got.records, (0..kept as u64).map(op).collect::<Vec<_>>());
    assert_eq!(d.bytes()[0].len(), torn_at, "cut at the torn frame");
    w.append(&op(1000)).unwrap();
    w.commit().unwrap();
    drop(w);
    let (_, got) = d.open().unwrap();
    let mut want: Vec<Rec> = (0..kept as u64).map(op).collect();
    want.push(op(1000));
    assert_eq!(got.records, want, "the batch's later records stay gone");
    let [file, _] = d.bytes();
    let s = scan(&file);
    assert!(file[s.end.valid_to() as usize..].iter().all(|&b| b == 0), "zeros after the tail");
}

// Corruption is never cut: one flipped bit anywhere in a middle record (its length, its
// checksum, its payload) is Corrupt at that record's offset, from the scan and from
// opening, which leaves the file as it was.
#[test]
fn a_flipped_bit_in_a_middle_record_is_corrupt_from_scan_and_open() {
    let d = dir("flip");
    let (mut w, _) = d.open().unwrap();
    w.append(&op(0)).unwrap();
    w.commit().unwrap();
    w.checkpoint(&checkpoint(1, 600)).unwrap(); // over two sectors
    for n in 2..8 {
        w.append(&op(n)).unwrap();
    }
    w.commit().unwrap();
    drop(w);
    let [_, live] = d.bytes();
    let s = scan(&live);
    for middle in [&s.records[0], &s.records[3]] {
        let (start, end) = (middle.offset as usize, (middle.offset + middle.size) as usize);
        for at in start..end {
            for bit in 0..8 {
                let mut bad = live.clone();
                bad[at] ^= 1 << bit;
                let what = format!("record #{} byte {at} bit {bit}", middle.number);
                let end = scan(&bad).end;
                assert!(
                    matches!(end, LogEnd::Corrupt { offset, .. } if offset == middle.offset),
                    "{what}: {end:?}"
                );
                d.set([&[], &bad]);
                match d.open() {
                    Err(WalError::Corrupt { label, offset, .. }) => {
                        assert_eq!(
                            (label.as_str(), offset),
                            ("node 3 log (file 1)", middle.offset),
                            "{what}"
                        )
                    }
                    other => panic!("{what}: {:?}", other.map(|(_, r)| r)),
                }
                assert_eq!(d.bytes()[1], bad, "{what}: nothing cut");
            }
        }
    }
}

// Foreign files are refused, naming the file: another node's log, a log of the old
// single-file kind, a format from the future, the same file twice, two files claiming
// one segment.
#[test]
fn foreign_files_are_refused_by_name() {
    let d = dir("foreign");
    let (mut w, _) = d.open().unwrap();
    w.append(&op(0)).unwrap();
    w.commit().unwrap();
    drop(w);
    let refused = |r: Result<(CheckpointedWal<Rec>, Recovered<Rec>), WalError>| match r {
        Err(e @ WalError::Foreign { .. }) => e.to_string(),
        other => panic!("not refused: {:?}", other.map(|(_, r)| r)),
    };
    let e = refused(CheckpointedWal::<Rec>::open(d.files(), 4, "node 4 log"));
    assert!(e.contains("node 4 log (file 0)") && e.contains("node 3's log, not node 4's"), "{e}");

    let [seg0, _] = d.bytes();
    let old_kind = d.0.join("old.wal");
    let (mut old, _) = WalFile::<Rec>::open(&old_kind).unwrap();
    old.append(&op(1)).unwrap();
    old.commit().unwrap();
    d.set([&[], &std::fs::read(&old_kind).unwrap()]);
    let e = refused(d.open());
    assert!(e.contains("node 3 log (file 1)") && e.contains("no magic"), "{e}");

    let mut future = Vec::new();
    let mut h = SegmentHeader::new(NODE, 0, 0);
    h.format = 2;
    crate::wal::encode_record(&h, &mut future).unwrap();
    d.set([&future, &[]]);
    assert!(refused(d.open()).contains("segment format 2"));

    d.set([&seg0, &[]]);
    let same = [d.files().into_iter().next().unwrap(), File::open(d.path(0)).unwrap()];
    assert!(refused(CheckpointedWal::<Rec>::open(same, NODE, "node 3 log")).contains("same file"));
    d.set([&seg0, &seg0]);
    assert!(refused(d.open()).contains("both files hold segment 0"));
}

// Stale bytes: a file reused by a checkpoint holds the new segment and zeros, however
// much more the segment it held before had, even if the last checkpoint's truncation
// never happened.
#[test]
fn stale_records_never_reappear_after_a_checkpoint() {
    let d = dir("stale");
    let (mut w, _) = d.open().unwrap();
    for n in 0..3000 {
        w.append(&op(n)).unwrap();
    }
    w.commit().unwrap();
    let long = d.bytes()[0].clone();
    assert!(long.len() as u64 > PREALLOCATE, "a segment longer than a checkpoint's write");
    w.checkpoint(&checkpoint(3000, 10)).unwrap();
    w.append(&op(3001)).unwrap();
    w.commit().unwrap();
    drop(w);
    // The crash: file 0 was never truncated after segment 1 became live.
    let live = d.bytes()[1].clone();
    d.set([&long, &live]);
    let (mut w, got) = d.open().unwrap();
    assert_eq!(got.records, vec![checkpoint(3000, 10), op(3001)]);
    w.checkpoint(&checkpoint(3002, 10)).unwrap();
    drop(w);
    let [reused, emptied] = d.bytes();
    assert!(emptied.is_empty());
    assert_eq!(reused.len() as u64, PREALLOCATE, "no stale bytes past the new segment's chunk");
    let s = scan(&reused);
    assert_eq!(
        s.records.iter().map(|r| &r.record).collect::<Vec<_>>(),
        vec![&checkpoint(3002, 10)]
    );
    assert!(
        matches!(s.end, LogEnd::Clean { valid_to, zeros_ahead } if valid_to + zeros_ahead == PREALLOCATE)
    );
}

// A checkpoint that fails while writing the next segment leaves the log refusing
// writes: a record committed to the old segment now might be skipped by a restart that
// finds the new one whole. (The other file is read-only here, so its write fails.)
#[test]
fn a_failed_checkpoint_refuses_later_writes() {
    let d = dir("failed");
    d.set([&[], &[]]);
    let files = [d.files().into_iter().next().unwrap(), File::open(d.path(1)).unwrap()];
    let (mut w, _) = CheckpointedWal::<Rec>::open(files, NODE, "node 3 log").unwrap();
    w.append(&op(0)).unwrap();
    w.commit().unwrap();
    assert!(matches!(w.checkpoint(&checkpoint(1, 10)), Err(WalError::Io(_))));
    w.append(&op(2)).unwrap();
    let e = w.commit().unwrap_err();
    assert!(matches!(&e, WalError::CheckpointFailed { label } if label == "node 3 log"), "{e}");
    assert!(matches!(w.checkpoint(&checkpoint(1, 10)), Err(WalError::CheckpointFailed { .. })));
}

// The same API as WalFile, with WalFile's costs: write_ahead puts records in the file
// before the sync, write_buffered grows it by the records alone, an empty commit writes
// nothing, and a record that cannot be encoded buffers nothing (not even the header).
#[test]
fn the_commit_path_behaves_as_wal_files_does() {
    let d = dir("api");
    let (mut w, _) = d.open().unwrap();
    w.commit().unwrap();
    w.write_ahead().unwrap();
    w.write_buffered().unwrap();
    assert_eq!(d.bytes().map(|b| b.len()), [0, 0], "nothing to write");
    let too_big = Rec::Op(0, "x".repeat(crate::wal::MAX_RECORD));
    assert!(matches!(w.append(&too_big), Err(WalError::Encode(_))));
    assert!(!w.is_dirty() && w.next_number() == 0, "the header waits for a record");
    w.append(&op(0)).unwrap();
    w.write_buffered().unwrap();
    let one = w.len();
    assert_eq!(d.bytes()[0].len() as u64, one, "no zeros ahead");
    w.append(&op(1)).unwrap();
    w.write_ahead().unwrap();
    assert_eq!(d.bytes()[0].len() as u64, PREALLOCATE, "zeros ahead");
    let (_, got) = d.open().unwrap();
    assert_eq!(got.records, vec![op(0), op(1)], "written before the sync");
    w.sync().unwrap();
    assert_eq!(w.label(), "node 3 log");
}

/// Not a test: how long a checkpoint and a commit take here (medians). Run with
/// `cargo test --lib measure_checkpoint -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_checkpoint_and_commit() {
    use std::time::{Duration, Instant};
    fn median(mut v: Vec<Duration>) -> Duration {
        v.sort();
        v[v.len() / 2]
    }
    let d = dir("measure");
    let (mut w, _) = d.open().unwrap();
    let first = checkpoint(0, 4096 - 8);
    let mut times = Vec::new();
    for round in 0..201 {
        w.append(&op(round)).unwrap();
        w.commit().unwrap();
        let t = Instant::now();
        w.checkpoint(&first).unwrap();
        times.push(t.elapsed());
    }
    println!("checkpoint, 4 KiB first record: median {:?} over {} runs", median(times), 201);

    let small = op(7);
    let mut frame = Vec::new();
    crate::wal::encode_record(&small, &mut frame).unwrap();
    for batch in [1usize, 64] {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let (mut f, _) = WalFile::<Rec>::open(&d.0.join("plain.wal")).unwrap();
        for _ in 0..2000 / batch {
            // Interleaved, so both see the same disk.
            let t = Instant::now();
            for _ in 0..batch {
                w.append(&small).unwrap();
            }
            w.commit().unwrap();
            ours.push(t.elapsed());
            let t = Instant::now();
            for _ in 0..batch {
                f.append(&small).unwrap();
            }
            f.commit().unwrap();
            theirs.push(t.elapsed());
        }
        println!(
            "append {batch} x {} B + commit: CheckpointedWal median {:?}, WalFile median {:?}",
            frame.len(),
            median(ours),
            median(theirs)
        );
    }
}
