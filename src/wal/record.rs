//! Record framing and replay, over bytes only.

use super::WalError;
use serde::{de::DeserializeOwned, Serialize};

/// The largest payload a record may have: 1 MiB. A longer length means a torn or
/// corrupt tail, not a record to wait for.
pub const MAX_RECORD: usize = 1 << 20;

/// A frame's header: the length and the checksum, 4 bytes each.
pub(super) const HEADER: usize = 8;

/// Appends one framed record to `out`.
///
/// # Errors
/// [`WalError::Encode`] if postcard cannot encode the record, encodes it to nothing (an
/// empty payload would read as the end of the log), or it exceeds [`MAX_RECORD`].
pub fn encode_record<R: Serialize>(rec: &R, out: &mut Vec<u8>) -> Result<(), WalError> {
    // Encoded in place after a header left blank, then the header is filled in: no
    // allocation per record (a node logs every money move).
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    // Most records are a few bytes: encoded on the stack and copied once (postcard's
    // growing-Vec writer pushes a byte at a time); larger ones straight into `out`.
    let mut small = [0u8; 64];
    match postcard::to_slice(rec, &mut small) {
        Ok(bytes) => out.extend_from_slice(bytes),
        Err(_) => {
            let taken = std::mem::take(out);
            *out = match postcard::to_extend(rec, taken) {
                Ok(v) => v,
                Err(e) => return Err(WalError::Encode(e.to_string())),
            };
        }
    }
    let len = out.len() - start - HEADER;
    if len == 0 || len > MAX_RECORD {
        out.truncate(start);
        return Err(WalError::Encode(format!("{len} bytes: not in 1..={MAX_RECORD}")));
    }
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What replaying a log's bytes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay<R> {
    /// Every whole, intact record, in order.
    pub records: Vec<R>,
    /// How many bytes those records take: the log's valid length.
    pub valid_len: usize,
    /// Bytes after the valid prefix (a torn or corrupt tail), to be cut off.
    pub torn: usize,
}

/// Replays `bytes`: every record up to the first one that is empty (zeros written ahead),
/// short, fails its checksum or does not decode. Nothing after that point is trusted, even if it looks intact:
/// a log is a prefix.
pub fn decode_prefix<R: DeserializeOwned>(bytes: &[u8]) -> Replay<R> {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        // A zero length is the zeros a log writes ahead, never a record.
        if len == 0 || len > MAX_RECORD || bytes.len() - at - HEADER < len {
            break;
        }
        let payload = &bytes[at + HEADER..at + HEADER + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        match postcard::from_bytes(payload) {
            Ok(r) => records.push(r),
            Err(_) => break,
        }
        at += HEADER + len;
    }
    Replay { records, valid_len: at, torn: bytes.len() - at }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A zero length is the zeros written ahead, even for a record type that would decode
    // from no bytes at all (their checksum, 0, matches an empty payload).
    #[test]
    fn zeros_ahead_are_no_record_whatever_decodes_from_nothing() {
        let r = decode_prefix::<()>(&[0u8; 32]);
        assert!(r.records.is_empty());
        assert_eq!((r.valid_len, r.torn), (0, 32));
    }
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    enum Rec {
        Prepared { tx: u64, amount: u64 },
        Decision { tx: u64, commit: bool },
        Note(String),
    }

    fn sample() -> Vec<Rec> {
        vec![
            Rec::Prepared { tx: 1, amount: 300 },
            Rec::Decision { tx: 1, commit: true },
            Rec::Note("x".repeat(200)),
            Rec::Prepared { tx: u64::MAX, amount: 0 },
        ]
    }

    fn log() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for r in sample() {
            encode_record(&r, &mut bytes).unwrap();
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    // Torn tail: a log cut at any byte replays exactly the records wholly before the cut.
    #[test]
    fn a_log_cut_at_every_byte_replays_a_clean_prefix() {
        let (bytes, ends) = log();
        for cut in 0..=bytes.len() {
            let r: Replay<Rec> = decode_prefix(&bytes[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(r.records, sample()[..whole], "cut at {cut}");
            assert_eq!(r.valid_len, if whole == 0 { 0 } else { ends[whole - 1] });
            assert_eq!(r.valid_len + r.torn, cut);
        }
    }

    // Corruption: a flipped bit anywhere stops replay at the record it hits.
    #[test]
    fn a_flipped_bit_anywhere_stops_replay_at_its_record() {
        let (bytes, ends) = log();
        for at in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[at] ^= bit;
                let r: Replay<Rec> = decode_prefix(&bad);
                let hit = ends.iter().position(|&e| at < e).expect("inside the log");
                assert_eq!(r.records, sample()[..hit], "bit {bit:#x} at byte {at}");
            }
        }
    }

    // A record must have a payload and fit in MAX_RECORD; a refused one leaves the
    // buffer as it was.
    #[test]
    fn empty_and_oversized_records_are_refused_and_change_nothing() {
        let mut out = vec![7u8];
        assert!(matches!(encode_record(&(), &mut out), Err(WalError::Encode(_))));
        assert_eq!(out, vec![7]);
        let big = vec![1u8; MAX_RECORD + 8];
        assert!(encode_record(&big, &mut out).is_err());
        assert_eq!(out, vec![7]);
        // Exactly MAX_RECORD bytes of payload is a record (a Vec of n bytes encodes to
        // a varint length and the bytes).
        let fits = vec![1u8; MAX_RECORD - 3];
        encode_record(&fits, &mut out).unwrap();
        assert_eq!(out.len(), 1 + HEADER + MAX_RECORD);
        let r: Replay<Vec<u8>> = decode_prefix(&out[1..]);
        assert_eq!((r.records.len(), r.torn), (1, 0));
        // A length of zero is the zeros written ahead, never a record, even with a CRC
        // that would match an empty payload.
        let mut zero = vec![0u8; 4];
        zero.extend_from_slice(&crc32fast::hash(&[]).to_le_bytes());
        assert_eq!(decode_prefix::<Vec<u8>>(&zero).valid_len, 0);
        // One byte over the limit is a torn tail, not a record to wait for.
        let mut over = ((MAX_RECORD + 1) as u32).to_le_bytes().to_vec();
        over.extend_from_slice(&[0; 4]);
        assert_eq!(decode_prefix::<Vec<u8>>(&over).torn, 8);
    }

    #[test]
    fn an_absurd_length_is_a_torn_tail_not_a_wait() {
        let mut bytes = Vec::new();
        encode_record(&Rec::Note("a".into()), &mut bytes).unwrap();
        let good = bytes.len();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 100]);
        let r: Replay<Rec> = decode_prefix(&bytes);
        assert_eq!((r.records.len(), r.valid_len, r.torn), (1, good, 104));
    }
}
