//! Framing: `[u32 little-endian payload length][postcard payload]`.
//!
//! Frames larger than [`MAX_FRAME`] are refused on both sides. A decoder tells "need more
//! bytes" (`Ok(None)`) apart from "corrupt" (`Err`), so a reader can close a link that
//! sends garbage instead of waiting for bytes that will never make sense.

use super::message::Message;
use std::fmt;

/// The largest payload accepted: 1 MiB. A longer length prefix means a corrupt stream.
pub const MAX_FRAME: usize = 1 << 20;

/// Why a stream of frames could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The length prefix exceeds [`MAX_FRAME`].
    Oversized(usize),
    /// The payload is not a valid [`Message`].
    Corrupt(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Oversized(n) => write!(f, "frame of {n} bytes exceeds {MAX_FRAME}"),
            DecodeError::Corrupt(why) => write!(f, "corrupt frame: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends one frame holding `msg` to `out`.
///
/// # Panics
/// If `msg` encodes to more than [`MAX_FRAME`] bytes or postcard cannot encode it: both
/// are bugs in this crate (no message we build comes near the limit).
pub fn encode_frame(msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let taken = std::mem::take(out);
    *out = postcard::to_extend(msg, taken).expect("postcard encodes every Message");
    let len = out.len() - start - 4;
    assert!(len <= MAX_FRAME, "a {len}-byte message exceeds MAX_FRAME");
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
}

/// Accumulates bytes read from a stream and yields the complete frames in them.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
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

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// [`DecodeError`] when the stream is corrupt; the decoder is then unusable.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        let rest = &self.buf[self.start..];
        if rest.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_FRAME {
            return Err(DecodeError::Oversized(len));
        }
        if rest.len() < 4 + len {
            return Ok(None);
        }
        let msg = postcard::from_bytes(&rest[4..4 + len])
            .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
        self.start += 4 + len;
        Ok(Some(msg))
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
            Message::Control { seq: 9, cmd: Control::Send { to: NodeId(2), amount: Amount::MAX } },
            Message::Report {
                seq: 9,
                report: Report::Received {
                    msg: ChannelMsg::Marker { snapshot: SnapshotId(0) },
                    recorded: Some(Amount(5)),
                    tx: None,
                },
            },
            Message::Channel(ChannelMsg::Tx(TxMsg::Prepare {
                spec: TxSpec {
                    tx: TxnId(7),
                    from: NodeId(1),
                    to: NodeId(2),
                    amount: Amount(30),
                    coord: NodeId(3),
                },
            })),
            Message::Report {
                seq: 10,
                report: Report::TxStep(TxReport {
                    sent: vec![(NodeId(2), TxMsg::Credit { tx: TxnId(7), amount: Amount(30) })],
                    decided: Some((TxnId(7), TxOutcome::Aborted(AbortReason::Timeout))),
                    balance: Amount(1),
                    held: Amount(0),
                }),
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
