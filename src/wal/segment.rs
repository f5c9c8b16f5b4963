//! One segment file of a [`super::CheckpointedWal`], read without writing anything: its
//! header, every record with its byte offset and number, and how the file ends (clean,
//! torn or corrupt, by the rule in `torn.rs`). Opening a log reads its two files through
//! [`scan_segment`], and so does a dump (`bank-master log`), so the two never disagree
//! about where a segment ends or whether it is damaged.
//!
//! A segment's first frame is its [`SegmentHeader`], framed as records are; then come
//! the records, numbered on from the header's `first_number`.

use super::torn::{next_frame, Fault, LogEnd, Next};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fmt;

/// The first bytes of every segment header's payload.
pub const SEGMENT_MAGIC: [u8; 8] = *b"bank-wal";

/// The segment format this build writes and reads.
pub const SEGMENT_FORMAT: u32 = 1;

/// The first frame of every segment file: whose log it belongs to, and where in it the
/// segment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// [`SEGMENT_MAGIC`]: a file of something else is refused, not replayed.
    pub magic: [u8; 8],
    /// [`SEGMENT_FORMAT`] (a later format keeps the magic and this field first).
    pub format: u32,
    /// The node whose log this is.
    pub node: u64,
    /// The segment's sequence number: 0 for a new log, one more at every checkpoint. Of
    /// two segments that count, the higher is live.
    pub seq: u64,
    /// The number of the segment's first record (its checkpoint, if `seq` > 0); records
    /// are numbered from 0 since the log was created.
    pub first_number: u64,
}

impl SegmentHeader {
    /// The header of segment `seq` of node `node`'s log, whose first record is number
    /// `first_number`.
    pub fn new(node: u64, seq: u64, first_number: u64) -> SegmentHeader {
        SegmentHeader { magic: SEGMENT_MAGIC, format: SEGMENT_FORMAT, node, seq, first_number }
    }

    /// The header in a frame's payload, or why it is not one of ours (the checksum
    /// matched, so these are the bytes that were written: another kind of file).
    fn decode(payload: &[u8]) -> Result<SegmentHeader, NotASegment> {
        let not = |why: String| Err(NotASegment { why });
        match postcard::take_from_bytes::<[u8; 8]>(payload) {
            Ok((magic, _)) if magic == SEGMENT_MAGIC => {}
            _ => return not("its first record is not a segment header (no magic)".into()),
        }
        match postcard::take_from_bytes::<([u8; 8], u32)>(payload) {
            Ok(((_, SEGMENT_FORMAT), _)) => {}
            Ok(((_, format), _)) => {
                return not(format!("segment format {format}; this build reads {SEGMENT_FORMAT}"))
            }
            Err(e) => return not(format!("a segment header without a format: {e}")),
        }
        postcard::from_bytes(payload)
            .or_else(|e| not(format!("a segment header that does not decode: {e}")))
    }
}

/// A file whose first frame is whole but is not a segment header of this format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotASegment {
    /// What the first frame is instead.
    pub why: String,
}

impl fmt::Display for NotASegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a log segment: {}", self.why)
    }
}

/// One whole record of a segment, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedRecord<R> {
    /// Where its frame starts in the file.
    pub offset: u64,
    /// Its frame's size in bytes (header included).
    pub size: u64,
    /// Its number since the log was created.
    pub number: u64,
    /// The record.
    pub record: R,
}

/// What a segment file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan<R> {
    /// The header, if whole. `None` for an empty file (or zeros only), and for a file
    /// whose header is torn or corrupt (`end` says which).
    pub header: Option<SegmentHeader>,
    /// Every whole record after the header, in order: up to `end`, nothing after it.
    pub records: Vec<ScannedRecord<R>>,
    /// How the records end, and what follows them.
    pub end: LogEnd,
}

/// Reads the segment file `bytes` (all of it): header, records, end. A record whose
/// checksum matches but which does not decode as an `R` ends the records as corrupt.
///
/// # Errors
/// The first frame is whole but is not a segment header of this format.
pub fn scan_segment<R: DeserializeOwned>(bytes: &[u8]) -> Result<SegmentScan<R>, NotASegment> {
    let (header, at) = match next_frame(bytes, 0) {
        Next::Stop(end) => return Ok(SegmentScan { header: None, records: Vec::new(), end }),
        Next::Frame { payload, next } => (SegmentHeader::decode(payload)?, next),
    };
    let (records, end) = scan_records(bytes, at, header.first_number);
    Ok(SegmentScan { header: Some(header), records, end })
}

/// Reads a log of records with no segment header (a node's single-file log) as
/// [`scan_segment`] reads a segment's records, numbered from 0.
pub fn scan_plain<R: DeserializeOwned>(bytes: &[u8]) -> SegmentScan<R> {
    let (records, end) = scan_records(bytes, 0, 0);
    SegmentScan { header: None, records, end }
}

/// The records from byte `at` on, numbered from `first_number`, and how they end.
fn scan_records<R: DeserializeOwned>(
    bytes: &[u8],
    mut at: usize,
    first_number: u64,
) -> (Vec<ScannedRecord<R>>, LogEnd) {
    let mut records = Vec::new();
    let end = loop {
        match next_frame(bytes, at) {
            Next::Stop(end) => break end,
            Next::Frame { payload, next } => match postcard::from_bytes(payload) {
                Ok(record) => {
                    let number = first_number + records.len() as u64;
                    let size = (next - at) as u64;
                    records.push(ScannedRecord { offset: at as u64, size, number, record });
                    at = next;
                }
                // The checksum matched: these are the bytes written, never a torn write.
                Err(e) => {
                    let fault = Fault::Undecodable(e.to_string());
                    break LogEnd::Corrupt { offset: at as u64, fault };
                }
            },
        }
    };
    (records, end)
}

#[cfg(test)]
mod tests {
    use super::super::record::encode_record;
    use super::*;

    fn segment(header: &SegmentHeader, records: &[String]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_record(header, &mut bytes).unwrap();
        for r in records {
            encode_record(r, &mut bytes).unwrap();
        }
        bytes
    }

    // A dump's view: the header, each record's offset, size and number, the end.
    #[test]
    fn a_scan_numbers_records_from_the_header_and_gives_their_offsets() {
        let header = SegmentHeader::new(3, 2, 10_001);
        let recs: Vec<String> = ["checkpoint", "a", "bb"].map(String::from).to_vec();
        let mut bytes = segment(&header, &recs);
        let valid = bytes.len() as u64;
        bytes.resize(4096, 0);
        let scan: SegmentScan<String> = scan_segment(&bytes).unwrap();
        assert_eq!(scan.header, Some(header));
        let got: Vec<(u64, u64, &str)> =
            scan.records.iter().map(|r| (r.offset, r.number, r.record.as_str())).collect();
        let first = scan.records[0].offset;
        assert_eq!(
            got,
            vec![
                (first, 10_001, "checkpoint"),
                (first + 19, 10_002, "a"),
                (first + 19 + 10, 10_003, "bb")
            ]
        );
        assert_eq!(scan.end, LogEnd::Clean { valid_to: valid, zeros_ahead: 4096 - valid });
        assert_eq!(
            scan.end.to_string(),
            format!("valid to byte {valid}; {} bytes of zeros ahead", 4096 - valid)
        );
    }

    // Empty and zero-filled files have no header and end clean at 0: no segment yet.
    #[test]
    fn an_empty_file_is_no_segment_yet() {
        for bytes in [vec![], vec![0u8; 300]] {
            let scan: SegmentScan<String> = scan_segment(&bytes).unwrap();
            assert_eq!(scan.header, None);
            assert_eq!(scan.end.valid_to(), 0);
            assert!(matches!(scan.end, LogEnd::Clean { .. }));
        }
    }

    // A whole first frame that is not our header: refused, with the reason.
    #[test]
    fn other_files_are_not_segments() {
        let mut bytes = Vec::new();
        encode_record(&"an old single-file log's first record".to_string(), &mut bytes).unwrap();
        let e = scan_segment::<String>(&bytes).unwrap_err();
        assert!(e.why.contains("no magic"), "{e}");
        let mut future = SegmentHeader::new(1, 0, 0);
        future.format = 9;
        let e = scan_segment::<String>(&segment(&future, &[])).unwrap_err();
        assert!(e.to_string().contains("segment format 9; this build reads 1"), "{e}");
    }

    // A record whose checksum matches but which is not an R: corrupt, never torn.
    #[test]
    fn an_undecodable_record_is_corrupt() {
        let mut bytes = segment(&SegmentHeader::new(1, 0, 0), &["ok".into()]);
        let at = bytes.len() as u64;
        encode_record(&vec![0xffu8; 3], &mut bytes).unwrap(); // not UTF-8
        let scan: SegmentScan<String> = scan_segment(&bytes).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert!(
            matches!(scan.end, LogEnd::Corrupt { offset, fault: Fault::Undecodable(_) } if offset == at)
        );
    }
}
