//! Write-ahead logs: records framed with a length and a checksum, forced to disk before
//! anything that promises something leaves the node (SPEC chapter 5).
//!
//! * `record` frames any serde record type: `[u32 length][u32 CRC-32 of the payload]
//!   [postcard payload]`, little-endian. Replay reads records until the first short,
//!   corrupt or undecodable one: a torn tail means the action never happened.
//! * `file` is the on-disk log: `append` buffers, `commit` writes every buffered record
//!   with one `write` and one `fdatasync`, so concurrent transactions can share a force
//!   (group commit), into zeros written ahead so that a force does not change the file's
//!   size. Opening replays the file and cuts a torn tail off (zeros ahead are kept).
//! * `memory` is the in-memory double for the simulation: it loses what was not
//!   committed when it "crashes", possibly leaving a torn record.
//!
//! This module knows nothing of transactions; the protocol defines the record type.

mod file;
mod memory;
mod record;

pub use file::WalFile;
pub use memory::MemoryWal;
pub use record::{decode_prefix, encode_record, Replay, MAX_RECORD};

use std::fmt;

/// Why a log could not be used.
#[derive(Debug)]
pub enum WalError {
    /// The file system refused.
    Io(std::io::Error),
    /// A record could not be encoded (a bug in the record type).
    Encode(String),
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io(e) => write!(f, "write-ahead log: {e}"),
            WalError::Encode(e) => write!(f, "write-ahead log record: {e}"),
        }
    }
}

impl std::error::Error for WalError {}

impl From<std::io::Error> for WalError {
    fn from(e: std::io::Error) -> Self {
        WalError::Io(e)
    }
}
