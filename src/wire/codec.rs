//! Framing: `[u32 little-endian length][payload]`, a message's postcard encoding cut into
//! frames of at most [`MAX_FRAME`] bytes.
//!
//! A message that encodes to more than [`MAX_FRAME`] bytes (a gathered snapshot of a
//! thousand nodes) goes as several frames: each but the last has the top bit of its length
//! set ([`MORE`]), and the decoder joins them, up to [`MAX_MESSAGE`] bytes, before it
//! decodes. A decoder tells "need more bytes" (`Ok(None)`) apart from "corrupt" (`Err`),
//! so a reader can close a link that sends garbage instead of waiting for bytes that
//! will never make sense; nothing a peer sends can make it panic.

use super::message::Message;
use std::fmt;

/// The largest frame payload: 1 MiB. A longer length prefix means a corrupt stream.
pub const MAX_FRAME: usize = 1 << 20;

/// The largest message, all its frames together: 256 MiB.
pub const MAX_MESSAGE: usize = 256 << 20;

/// The bit of a frame's length that says another frame of the same message follows.
pub const MORE: u32 = 1 << 31;

/// Why a stream of frames could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The length prefix exceeds [`MAX_FRAME`], or a message's frames exceed its limit.
    Oversized(usize),
    /// The payload is not a valid [`Message`].
    Corrupt(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Oversized(n) => write!(f, "a frame or message of {n} bytes is too large"),
            DecodeError::Corrupt(why) => write!(f, "corrupt frame: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends the frames holding `msg` to `out`: one, unless it encodes to more than
/// [`MAX_FRAME`] bytes.
///
/// # Panics
/// If `msg` encodes to more than [`MAX_MESSAGE`] bytes or postcard cannot encode it: both
/// are bugs in this crate (no message we build comes near the limit).
pub fn encode_frame(msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    // Most messages are a few bytes: encoded on the stack and copied once (postcard's
    // growing-Vec writer pushes a byte at a time); larger ones straight into `out`.
    let mut small = [0u8; 128];
    match postcard::to_slice(msg, &mut small) {
        Ok(bytes) => out.extend_from_slice(bytes),
        Err(_) => {
            let taken = std::mem::take(out);
            *out = postcard::to_extend(msg, taken).expect("postcard encodes every Message");
        }
    }
    let len = out.len() - start - 4;
    if len <= MAX_FRAME {
        out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        return;
    }
    assert!(len <= MAX_MESSAGE, "a {len}-byte message exceeds MAX_MESSAGE");
    let payload = out.split_off(start + 4);
    out.truncate(start);
    let mut chunks = payload.chunks(MAX_FRAME).peekable();
    while let Some(chunk) = chunks.next() {
        let more = if chunks.peek().is_some() { MORE } else { 0 };
        out.extend_from_slice(&(chunk.len() as u32 | more).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Accumulates bytes read from a stream and yields the complete messages in them.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    /// The frames of a message so far, when it came in more than one.
    parts: Vec<u8>,
    /// The largest message accepted, all frames together.
    limit: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder { buf: Vec::new(), start: 0, parts: Vec::new(), limit: MAX_MESSAGE }
    }
}

impl FrameDecoder {
    /// An empty decoder that accepts messages of up to [`MAX_MESSAGE`] bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts messages of at most `limit` bytes (a link that has not said who it is
    /// gets one frame's worth, so a stranger cannot make this process hold much).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Adds bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// How many bytes the decoder's buffer holds (consumed ones included, until it
    /// compacts): what it costs in memory.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.len()
    }

    /// Bytes received but not yet part of a complete message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start + self.parts.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// [`DecodeError`] when the stream is corrupt; the decoder is then unusable.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        loop {
            let rest = &self.buf[self.start..];
            if rest.len() < 4 {
                return Ok(None);
            }
            let word = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let (len, more) = ((word & !MORE) as usize, word & MORE != 0);
            if len > MAX_FRAME || (more && len == 0) {
                return Err(DecodeError::Oversized(len));
            }
            if rest.len() < 4 + len {
                return Ok(None);
            }
            let payload = &rest[4..4 + len];
            if !more && self.parts.is_empty() {
                let msg = postcard::from_bytes(payload)
                    .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
                self.start += 4 + len;
                return Ok(Some(msg));
            }
            if self.parts.len() + len > self.limit {
                return Err(DecodeError::Oversized(self.parts.len() + len));
            }
            self.parts.extend_from_slice(payload);
            self.start += 4 + len;
            if !more {
                let whole = std::mem::take(&mut self.parts);
                let msg = postcard::from_bytes(&whole)
                    .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
                return Ok(Some(msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Amount, NodeId, SnapshotId, TxnId};
    use crate::wire::message::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello(Hello { nonce: u64::MAX, from: Peer::Node(NodeId(7)) }),
            Message::Channel(ChannelMsg::Transfer { amount: Amount(300) }),
            Message::Channel(ChannelMsg::Marker { snapshot: SnapshotId(2) }),
            Message::Control {
                seq: 9,
                cmd: Control::Send { to: NodeId(2), amount: Amount::MAX, predicted: Some(true) },
            },
            Message::Report {
                seq: 9,
                report: Report::Received {
                    msg: ChannelMsg::Marker { snapshot: SnapshotId(0) },
                    recorded: Some(Amount(5)),
                    tx: None,
                },
            },
            Message::Channel(ChannelMsg::Commit(CommitMsg::TwoPc(TwoPcMsg::Prepare {
                spec: TxSpec::transfer(TxnId(7), NodeId(1), NodeId(2), Amount(30), NodeId(3)),
            }))),
            Message::Report {
                seq: 10,
                report: Report::TxStep(Box::new(TxReport {
                    sent: vec![(NodeId(2), CommitMsg::Credit { tx: TxnId(7), amount: Amount(30) })],
                    decided: vec![(TxnId(7), TxOutcome::Aborted(AbortReason::Timeout))],
                    money: Money { balance: Amount(1), held: Amount(0), spare: Amount(1) },
                    dropped: vec![(TxnId(6), Amount(5))],
                })),
            },
            Message::ObserverReply(ObserverReply::NotComplete(vec![Incomplete {
                snapshot: SnapshotId(1),
                open: vec![(NodeId(1), NodeId(2))],
            }])),
        ]
    }

    #[test]
    fn every_message_round_trips_through_one_stream() {
        let mut bytes = Vec::new();
        for m in samples() {
            encode_frame(&m, &mut bytes);
        }
        let mut dec = FrameDecoder::new();
        dec.extend(&bytes);
        let mut got = Vec::new();
        while let Some(m) = dec.next_message().unwrap() {
            got.push(m);
        }
        assert_eq!(got, samples());
        assert_eq!(dec.pending(), 0);
    }

    #[test]
    fn a_stream_cut_anywhere_yields_only_whole_frames() {
        let mut bytes = Vec::new();
        for m in samples() {
            encode_frame(&m, &mut bytes);
        }
        for cut in 0..=bytes.len() {
            let mut dec = FrameDecoder::new();
            dec.extend(&bytes[..cut]);
            let mut n = 0;
            while let Some(m) = dec.next_message().unwrap() {
                assert_eq!(m, samples()[n]);
                n += 1;
            }
            // Feeding the rest one byte at a time yields the remaining frames in order.
            for b in &bytes[cut..] {
                dec.extend(std::slice::from_ref(b));
                while let Some(m) = dec.next_message().unwrap() {
                    assert_eq!(m, samples()[n]);
                    n += 1;
                }
            }
            assert_eq!(n, samples().len(), "cut at {cut}");
        }
    }

    #[test]
    fn a_transfer_frame_is_small() {
        let mut bytes = Vec::new();
        encode_frame(&Message::Channel(ChannelMsg::Transfer { amount: Amount(300) }), &mut bytes);
        assert_eq!(bytes.len(), 4 + 4, "tag, tag, varint(300) after the length");
    }

    /// A message far larger than one frame: a gathered snapshot of 600 nodes.
    fn big() -> Message {
        let nodes: Vec<(NodeId, Amount)> = (0..600).map(|i| (NodeId(i), Amount(1))).collect();
        let mut channels = Vec::new();
        for a in 0..600u32 {
            for b in 0..600u32 {
                if a != b {
                    channels.push((NodeId(a), NodeId(b), Amount(u64::from(a * b))));
                }
            }
        }
        let snap =
            GlobalSnapshot { snapshot: SnapshotId(3), nodes, channels, accounts: Vec::new() };
        Message::ObserverReply(ObserverReply::Collected(vec![snap]))
    }

    // A message over the frame limit goes as several frames, each within the limit,
    // and comes back whole, also when the stream arrives in small pieces.
    #[test]
    fn a_large_message_goes_as_several_frames() {
        let mut bytes = Vec::new();
        encode_frame(&samples()[1], &mut bytes);
        encode_frame(&big(), &mut bytes);
        encode_frame(&samples()[2], &mut bytes);
        let mut at = 0;
        let mut frames = 0;
        while at < bytes.len() {
            let word = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            let len = (word & !MORE) as usize;
            assert!(len <= MAX_FRAME);
            at += 4 + len;
            frames += 1;
        }
        assert!(frames > 4, "{frames} frames");
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(100_003) {
            dec.extend(piece);
            while let Some(m) = dec.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![samples()[1].clone(), big(), samples()[2].clone()]);
        assert_eq!(dec.pending(), 0);
        let mut small = FrameDecoder::new();
        small.set_limit(MAX_FRAME);
        small.extend(&bytes);
        assert_eq!(small.next_message().unwrap(), Some(samples()[1].clone()));
        assert!(matches!(small.next_message(), Err(DecodeError::Oversized(_))));
        // The limit holds the whole message: exactly its size is taken, a byte less not.
        let mut one = Vec::new();
        encode_frame(&big(), &mut one);
        let (mut at, mut size) = (0, 0);
        while at < one.len() {
            let len = (u32::from_le_bytes(one[at..at + 4].try_into().unwrap()) & !MORE) as usize;
            size += len;
            at += 4 + len;
        }
        for (limit, fits) in [(size, true), (size - 1, false)] {
            let mut dec = FrameDecoder::new();
            dec.set_limit(limit);
            dec.extend(&one);
            let got = dec.next_message();
            assert_eq!(got.is_ok(), fits, "limit {limit} for {size} bytes: {got:?}");
        }
    }

    // Boundaries: a frame of exactly MAX_FRAME is taken; pending counts what waits.
    #[test]
    fn limits_and_pending_are_exact() {
        let mut dec = FrameDecoder::new();
        dec.extend(&(MAX_FRAME as u32).to_le_bytes());
        assert_eq!(dec.next_message(), Ok(None), "a full-size frame is awaited, not refused");
        assert_eq!(dec.pending(), 4);
        let mut dec = FrameDecoder::new();
        dec.extend(&(MORE).to_le_bytes());
        assert!(dec.next_message().is_err(), "an empty continuation frame is corrupt");
        let mut dec = FrameDecoder::new();
        let mut bytes = Vec::new();
        encode_frame(&samples()[0], &mut bytes);
        dec.extend(&bytes[..3]);
        assert_eq!((dec.next_message(), dec.pending()), (Ok(None), 3));
        assert_eq!(
            DecodeError::Oversized(9).to_string(),
            "a frame or message of 9 bytes is too large"
        );
        assert!(DecodeError::Corrupt("x".into()).to_string().contains("corrupt frame: x"));
    }

    /// `n` bytes of Transfer frames (each 8 bytes), whole.
    fn transfers(n: usize) -> Vec<u8> {
        assert_eq!(n % 8, 0);
        let mut bytes = Vec::new();
        while bytes.len() < n {
            encode_frame(
                &Message::Channel(ChannelMsg::Transfer { amount: Amount(300) }),
                &mut bytes,
            );
        }
        bytes
    }

    fn drain(dec: &mut FrameDecoder) -> usize {
        let mut n = 0;
        while dec.next_message().unwrap().is_some() {
            n += 1;
        }
        n
    }

    // Memory: a buffer read to its end is emptied before the next bytes; one mostly read
    // (more than 64 KiB and over half of it) is compacted; otherwise it only grows.
    #[test]
    fn the_buffer_is_emptied_or_compacted_as_it_is_read() {
        let mut dec = FrameDecoder::new();
        dec.extend(&transfers(80));
        assert_eq!(drain(&mut dec), 10);
        dec.extend(&[1, 2]);
        assert_eq!(dec.held(), 2, "read to its end: emptied");
        let mut dec = FrameDecoder::new();
        let mut bytes = transfers(100_000);
        bytes.extend_from_slice(&[9, 0, 0, 0, 1]); // a frame begun
        dec.extend(&bytes);
        assert_eq!(drain(&mut dec), 12_500);
        dec.extend(&[2]);
        assert_eq!(dec.held(), 6, "mostly read: compacted to the begun frame");
        let mut dec = FrameDecoder::new();
        let mut bytes = transfers(70_000);
        bytes.extend_from_slice(&((80_000u32).to_le_bytes()));
        bytes.extend_from_slice(&vec![0; 79_000]);
        dec.extend(&bytes);
        drain(&mut dec);
        dec.extend(&[0]);
        assert_eq!(dec.held(), bytes.len() + 1, "less than half read: kept");
        let mut dec = FrameDecoder::new();
        let mut bytes = transfers(60_000);
        bytes.push(1);
        dec.extend(&bytes);
        drain(&mut dec);
        dec.extend(&[0]);
        assert_eq!(dec.held(), bytes.len() + 1, "under 64 KiB read: kept");
    }

    #[test]
    fn an_oversized_length_is_corrupt_not_pending() {
        let mut dec = FrameDecoder::new();
        dec.extend(&((MAX_FRAME as u32) + 1).to_le_bytes());
        assert_eq!(dec.next_message(), Err(DecodeError::Oversized(MAX_FRAME + 1)));
    }

    #[test]
    fn garbage_payload_is_corrupt() {
        let mut dec = FrameDecoder::new();
        dec.extend(&[2, 0, 0, 0, 0xff, 0xff]);
        assert!(matches!(dec.next_message(), Err(DecodeError::Corrupt(_))));
    }
}
