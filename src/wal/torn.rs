//! Where a log's records end, and whether what follows them is a torn write (a crash
//! during the last commit: recovery cuts it) or damage (recovery must stop and say so).
//! Read by [`super::scan_segment`], and so by opening a [`super::CheckpointedWal`] and by
//! a dump alike: the two cannot disagree. [`super::WalFile`] does not use it (it cuts
//! whatever fails).
//!
//! A torn write leaves, sector by sector, either the bytes meant or what was there
//! before, which in a log is zeros: the zeros written ahead, or nothing past the old end
//! of the file (a file truncated to 0 before reuse reads zeros where it was never
//! written). So the first frame that fails, at byte X, is judged thus (etcd's
//! `isTornEntry`, server/storage/wal/decoder.go, with the refinements 3 to 5):
//!
//! 1. It runs past the end of the file: **torn** (the file's growth outran its data).
//! 2. Some 512-byte sector it overlaps holds only zeros from X (or from the sector's
//!    start) to the sector's end: a sector the crash never wrote, so **torn**.
//! 3. Its length is over [`MAX_RECORD`]: **corrupt**, even past the end; a torn length
//!    field is the real one with some bytes zeroed, never larger.
//! 4. Its checksum matches the payload at a length one bit away from the stored one:
//!    **corrupt**; the length field was damaged, not torn (without this a flipped length
//!    bit in a middle record reaches the zeros ahead and reads as torn by 1 or 2).
//! 5. Otherwise **corrupt**. Rule 2 looks at the sector from X on, not at the frame's
//!    bytes alone as etcd does: an unwritten sector is zero to its end, while a record's
//!    last bytes in a sector may well be zero with the next record after them. So a
//!    failing frame inside one sector is always corrupt (its length is not zero), and a
//!    damaged record in the middle of the log is never taken for torn.
//!
//! A zero length is the end of the records (the zeros written ahead). Non-zero bytes
//! after it are judged as a failing 8-byte frame there would be (rule 2, else corrupt).

use super::record::{HEADER, MAX_RECORD};
use std::fmt;

/// The sector a disk writes whole, or not at all (the least there is; etcd's
/// `minSectorSize`).
pub const SECTOR: usize = 512;

/// Why the frame where a log's records stop does not hold a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The frame runs past the end of the file.
    RunsPastEnd,
    /// The length field says more than [`MAX_RECORD`] bytes.
    TooLong {
        /// The length field.
        len: u32,
    },
    /// The payload does not match its checksum.
    Checksum,
    /// The payload matches its checksum at `real` bytes, one bit away from the length
    /// field's `len`: the length field is damaged.
    DamagedLength {
        /// The length field.
        len: u32,
        /// The length at which the checksum matches.
        real: u32,
    },
    /// A zero length (the end of the records) with non-zero bytes after it.
    DataAfterEnd,
    /// The payload matches its checksum but does not decode (a record of another type
    /// or version, or a segment header that is not one).
    Undecodable(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::RunsPastEnd => write!(f, "the frame runs past the end of the file"),
            Fault::TooLong { len } => write!(f, "length {len} is over {MAX_RECORD}"),
            Fault::Checksum => write!(f, "checksum mismatch"),
            Fault::DamagedLength { len, real } => {
                write!(f, "length field says {len}, the checksum matches at {real}")
            }
            Fault::DataAfterEnd => write!(f, "non-zero bytes after the end of the records"),
            Fault::Undecodable(why) => write!(f, "does not decode: {why}"),
        }
    }
}

/// How a log file's records end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// Every frame is whole: the records end at byte `valid_to`, and `zeros_ahead` zero
    /// bytes (written ahead) follow them to the end of the file.
    Clean {
        /// Where the records end.
        valid_to: u64,
        /// Zero bytes after them.
        zeros_ahead: u64,
    },
    /// The frame at `offset` fails and is torn: the `bytes` from it to the end of the
    /// file are a torn tail, which recovery cuts off.
    Torn {
        /// Where the torn frame starts (the records end there).
        offset: u64,
        /// From `offset` to the end of the file.
        bytes: u64,
        /// How the frame fails.
        fault: Fault,
    },
    /// The frame at `offset` fails and is not a torn write: damage, which recovery
    /// refuses to cut.
    Corrupt {
        /// Where the damaged frame starts.
        offset: u64,
        /// How it fails.
        fault: Fault,
    },
}

impl LogEnd {
    /// Where the records that can be trusted end.
    pub fn valid_to(&self) -> u64 {
        match *self {
            LogEnd::Clean { valid_to, .. } => valid_to,
            LogEnd::Torn { offset, .. } | LogEnd::Corrupt { offset, .. } => offset,
        }
    }
}

impl fmt::Display for LogEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogEnd::Clean { valid_to, zeros_ahead: 0 } => write!(f, "valid to byte {valid_to}"),
            LogEnd::Clean { valid_to, zeros_ahead } => {
                write!(f, "valid to byte {valid_to}; {zeros_ahead} bytes of zeros ahead")
            }
            LogEnd::Torn { offset, bytes, fault } => write!(
                f,
                "torn tail from byte {offset} ({bytes} bytes, ignored by recovery): {fault}"
            ),
            LogEnd::Corrupt { offset, fault } => {
                write!(f, "corrupt record at byte {offset}: {fault}")
            }
        }
    }
}

/// What [`next_frame`] found.
#[derive(Debug)]
pub(super) enum Next<'a> {
    /// A whole frame whose payload matches its checksum; the next frame starts at `next`.
    Frame { payload: &'a [u8], next: usize },
    /// The records end at the frame asked for.
    Stop(LogEnd),
}

/// The frame at byte `at` of a log file's `bytes` (all of them: rules 1 and 2 look
/// past the frame).
pub(super) fn next_frame(bytes: &[u8], at: usize) -> Next<'_> {
    let rest = &bytes[at..];
    if rest.len() < 4 {
        return Next::Stop(if zero(rest) {
            clean(bytes, at)
        } else {
            LogEnd::Torn { offset: at as u64, bytes: rest.len() as u64, fault: Fault::RunsPastEnd }
        });
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
    if len == 0 {
        return Next::Stop(after_end(bytes, at));
    }
    if len as usize > MAX_RECORD {
        return Next::Stop(LogEnd::Corrupt { offset: at as u64, fault: Fault::TooLong { len } });
    }
    let end = at + HEADER + len as usize;
    if end > bytes.len() {
        return Next::Stop(failing(bytes, at, len, Fault::RunsPastEnd));
    }
    let crc = u32::from_le_bytes(rest[4..HEADER].try_into().expect("4 bytes"));
    let payload = &bytes[at + HEADER..end];
    if crc32fast::hash(payload) != crc {
        return Next::Stop(failing(bytes, at, len, Fault::Checksum));
    }
    Next::Frame { payload, next: end }
}

/// The records end at a zero length (or at the end of the file) at `at`.
fn after_end(bytes: &[u8], at: usize) -> LogEnd {
    if zero(&bytes[at..]) {
        return clean(bytes, at);
    }
    let header_end = (at + HEADER).min(bytes.len());
    if unwritten_sector(bytes, at, header_end) {
        LogEnd::Torn {
            offset: at as u64,
            bytes: (bytes.len() - at) as u64,
            fault: Fault::DataAfterEnd,
        }
    } else {
        LogEnd::Corrupt { offset: at as u64, fault: Fault::DataAfterEnd }
    }
}

fn clean(bytes: &[u8], at: usize) -> LogEnd {
    LogEnd::Clean { valid_to: at as u64, zeros_ahead: (bytes.len() - at) as u64 }
}

/// The frame at `at`, of length field `len`, fails with `fault`: torn or corrupt.
fn failing(bytes: &[u8], at: usize, len: u32, fault: Fault) -> LogEnd {
    let offset = at as u64;
    // Rule 4 first: a damaged length would otherwise pass for torn by rules 1 and 2.
    if let Some(real) = damaged_length(bytes, at, len) {
        return LogEnd::Corrupt { offset, fault: Fault::DamagedLength { len, real } };
    }
    let torn = match fault {
        Fault::RunsPastEnd => true,
        _ => unwritten_sector(bytes, at, at + HEADER + len as usize),
    };
    if torn {
        LogEnd::Torn { offset, bytes: (bytes.len() - at) as u64, fault }
    } else {
        LogEnd::Corrupt { offset, fault }
    }
}

/// Rule 4: a length one bit away from `len` at which the payload matches the
/// checksum. 32 tries, so a torn frame passes for damaged by chance once in 2^27.
fn damaged_length(bytes: &[u8], at: usize, len: u32) -> Option<u32> {
    if bytes.len() - at < HEADER {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[at + 4..at + HEADER].try_into().expect("4 bytes"));
    let room = bytes.len() - at - HEADER;
    (0..32).map(|bit| len ^ (1 << bit)).find(|&real| {
        let n = real as usize;
        n != 0
            && n <= MAX_RECORD
            && n <= room
            && crc32fast::hash(&bytes[at + HEADER..at + HEADER + n]) == crc
    })
}

/// Rule 2: whether some sector overlapping `from..to` holds only zeros from `from` (or
/// its own start) to its end (or the file's).
fn unwritten_sector(bytes: &[u8], from: usize, to: usize) -> bool {
    let mut sector = from / SECTOR * SECTOR;
    while sector < to {
        let lo = sector.max(from);
        let hi = (sector + SECTOR).min(bytes.len());
        if lo < hi && zero(&bytes[lo..hi]) {
            return true;
        }
        sector += SECTOR;
    }
    false
}

fn zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::super::record::encode_record;
    use super::*;

    /// Every frame `next_frame` reads from the start, and how the records end.
    fn walk(bytes: &[u8]) -> (Vec<usize>, LogEnd) {
        let mut starts = Vec::new();
        let mut at = 0;
        loop {
            match next_frame(bytes, at) {
                Next::Frame { next, .. } => {
                    starts.push(at);
                    at = next;
                }
                Next::Stop(end) => return (starts, end),
            }
        }
    }

    /// Records of assorted sizes (a few bytes to a few sectors), their frame starts, and
    /// where they end.
    fn log() -> (Vec<u8>, Vec<usize>, usize) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for i in 0..12u32 {
            starts.push(bytes.len());
            let rec: Vec<u8> = (0..(i * 97 % 1300)).map(|b| (b as u8).wrapping_mul(7)).collect();
            encode_record(&(i, rec), &mut bytes).unwrap();
        }
        let end = bytes.len();
        (bytes, starts, end)
    }

    // A zero length is the end of the records: zeros after it are written ahead, clean.
    #[test]
    fn zeros_after_the_records_are_a_clean_end() {
        let (mut bytes, starts, end) = log();
        assert_eq!(
            walk(&bytes),
            (starts.clone(), LogEnd::Clean { valid_to: end as u64, zeros_ahead: 0 })
        );
        bytes.resize(end + 3000, 0);
        let want = LogEnd::Clean { valid_to: end as u64, zeros_ahead: 3000 };
        assert_eq!(walk(&bytes), (starts, want));
        assert_eq!(walk(&[0; 3]).1, LogEnd::Clean { valid_to: 0, zeros_ahead: 3 });
    }

    // Rule 1: a log cut at any byte ends torn at the frame the cut falls in, with the
    // bytes from it to the cut.
    #[test]
    fn a_log_cut_at_every_byte_ends_torn_at_the_cut_frame() {
        let (bytes, starts, end) = log();
        for cut in 0..end {
            let (got, stop) = walk(&bytes[..cut]);
            let whole: Vec<usize> = starts.iter().copied().filter(|&s| s < cut).collect();
            if starts.contains(&cut) {
                assert_eq!(got, whole, "cut {cut}");
                assert_eq!(stop, LogEnd::Clean { valid_to: cut as u64, zeros_ahead: 0 });
            } else {
                assert_eq!(got, whole[..whole.len() - 1], "cut {cut}");
                let last = whole[whole.len() - 1];
                let bytes = (cut - last) as u64;
                assert!(
                    matches!(stop, LogEnd::Torn { offset, bytes: b, .. } if offset == last as u64 && b == bytes),
                    "cut {cut}: {stop:?}"
                );
            }
        }
    }

    // Rule 2: a sector a crash never wrote reads as zeros, and the first frame it
    // changes is torn, whichever sector of the frame it was and whatever the batch wrote
    // after it.
    #[test]
    fn a_frame_over_a_sector_never_written_is_torn() {
        let (mut bytes, starts, end) = log();
        let ends: Vec<usize> = starts[1..].iter().copied().chain([end]).collect();
        bytes.resize(end.div_ceil(SECTOR) * SECTOR + 4 * SECTOR, 0);
        for sector in (0..end).step_by(SECTOR) {
            let mut crashed = bytes.clone();
            crashed[sector..sector + SECTOR].fill(0);
            let hit = (0..starts.len())
                .find(|&i| crashed[starts[i]..ends[i]] != bytes[starts[i]..ends[i]])
                .expect("a sector of records changes one");
            let (got, stop) = walk(&crashed);
            assert_eq!(got, starts[..hit], "sector at {sector}");
            assert!(
                matches!(stop, LogEnd::Torn { offset, .. } if offset == starts[hit] as u64),
                "sector at {sector}: {stop:?}"
            );
        }
    }

    // Rules 3 to 5: one flipped bit in a record followed by others is corrupt at that
    // record, wherever the bit is: its length, its checksum or its payload.
    #[test]
    fn a_flipped_bit_in_a_middle_record_is_corrupt_at_its_offset() {
        let (mut bytes, starts, end) = log();
        bytes.resize(end + 64 * 1024, 0);
        for (i, &start) in starts.iter().enumerate().take(starts.len() - 1).skip(1) {
            for at in start..starts[i + 1] {
                for bit in 0..8 {
                    let mut bad = bytes.clone();
                    bad[at] ^= 1 << bit;
                    let (got, stop) = walk(&bad);
                    assert_eq!(got, starts[..i], "record {i}, byte {at}, bit {bit}");
                    assert!(
                        matches!(stop, LogEnd::Corrupt { offset, .. } if offset == start as u64),
                        "record {i}, byte {at}, bit {bit}: {stop:?}"
                    );
                }
            }
        }
    }

    // Rule 3: a length over MAX_RECORD is damage even where the file ends.
    #[test]
    fn an_absurd_length_is_corrupt_even_past_the_end() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[1, 2]);
        let fault = Fault::TooLong { len: u32::MAX };
        assert_eq!(walk(&bytes).1, LogEnd::Corrupt { offset: 0, fault });
    }

    // After a zero length, bytes in the same sector are damage; bytes only in later
    // sectors are what a torn batch wrote after a sector it never wrote.
    #[test]
    fn data_after_a_zero_length_is_torn_only_past_an_unwritten_sector() {
        let mut bytes = vec![0u8; 4 * SECTOR];
        bytes[100] = 1;
        let corrupt = LogEnd::Corrupt { offset: 0, fault: Fault::DataAfterEnd };
        assert_eq!(walk(&bytes).1, corrupt);
        bytes[100] = 0;
        bytes[SECTOR + 5] = 1;
        let torn = LogEnd::Torn { offset: 0, bytes: 4 * SECTOR as u64, fault: Fault::DataAfterEnd };
        assert_eq!(walk(&bytes).1, torn);
    }
}
