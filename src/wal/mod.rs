//! Write-ahead logs: records framed with a length and a checksum, forced to disk before
//! anything that promises something leaves the node (SPEC chapter 5).
//!
//! * `record` frames any serde record type: `[u32 length][u32 CRC-32 of the payload]
//!   [postcard payload]`, little-endian. Replay reads records until the first short,
//!   corrupt or undecodable one: a torn tail means the action never happened.
//! * `appender` writes one file: `append` buffers, `commit` writes every buffered record
//!   with one `write` and one `fdatasync`, so concurrent transactions can share a force
//!   (group commit), into zeros written ahead so that a force does not change the file's
//!   size.
//! * `file` ([`WalFile`]) is the one-file log over an appender. Opening replays the file
//!   and cuts a torn tail off (zeros ahead are kept).
//! * `checkpointed` ([`CheckpointedWal`]) is the log that checkpoints: two files used in
//!   turn, each a segment that starts with a header and, after the first, the caller's
//!   checkpoint record, so recovery replays one checkpoint and what followed it. Opening
//!   cuts a torn tail but refuses a damaged record.
//! * `torn` is the rule telling a torn tail from damage (etcd's, refined); `segment`
//!   reads a segment file with it ([`scan_segment`]), for opening and for a dump alike.
//! * `memory` is the in-memory double for the simulation: it loses what was not
//!   committed when it "crashes", possibly leaving a torn record.
//!
//! This module knows nothing of transactions; the protocol defines the record type.
//! Nodes are handed their log files open by the master ([`create_log`]); a
//! [`CheckpointedWal`] never needs a path.

mod appender;
mod checkpointed;
mod file;
mod memory;
mod record;
mod segment;
mod torn;

pub use checkpointed::{CheckpointedWal, Recovered};
pub use file::WalFile;
pub use memory::MemoryWal;
pub use record::{decode_prefix, encode_record, Replay, MAX_RECORD};
pub use segment::{
    scan_plain, scan_segment, NotASegment, ScannedRecord, SegmentHeader, SegmentScan,
    SEGMENT_FORMAT, SEGMENT_MAGIC,
};
pub use torn::{Fault, LogEnd, SECTOR};

use std::fmt;

/// Why a log could not be used.
#[derive(Debug)]
pub enum WalError {
    /// The file system refused.
    Io(std::io::Error),
    /// A record could not be encoded (a bug in the record type).
    Encode(String),
    /// A record that is not a torn tail fails its checksum or does not decode: damage,
    /// which recovery refuses to cut (it would drop the committed records after it).
    Corrupt {
        /// The log file, as its owner names it.
        label: String,
        /// Where the damaged frame starts.
        offset: u64,
        /// How it fails.
        fault: Fault,
    },
    /// A file that is not a segment of this log: another node's, another format, not a
    /// log at all, or the same file given twice.
    Foreign {
        /// The log file, as its owner names it.
        label: String,
        /// What it is instead.
        why: String,
    },
    /// Neither file holds a segment to recover from, yet one of them shows that records
    /// were written: the live segment is gone (never the result of a crash).
    Lost {
        /// The log, as its owner names it.
        label: String,
        /// What the files hold.
        why: String,
    },
    /// A checkpoint failed after it began writing the next segment, which a restart
    /// might take for live: records written to the old one now could be skipped, so the
    /// log refuses to write until it is reopened.
    CheckpointFailed {
        /// The log, as its owner names it.
        label: String,
    },
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io(e) => write!(f, "write-ahead log: {e}"),
            WalError::Encode(e) => write!(f, "write-ahead log record: {e}"),
            WalError::Corrupt { label, offset, fault } => {
                write!(f, "{label}: corrupt record at byte {offset}: {fault}")
            }
            WalError::Foreign { label, why } => write!(f, "{label}: not this log's: {why}"),
            WalError::Lost { label, why } => write!(f, "{label}: no live segment: {why}"),
            WalError::CheckpointFailed { label } => {
                write!(f, "{label}: a checkpoint failed half-way; reopen the log")
            }
        }
    }
}

impl std::error::Error for WalError {}

impl From<std::io::Error> for WalError {
    fn from(e: std::io::Error) -> Self {
        WalError::Io(e)
    }
}

/// A new, empty log file: `dir/name` (created or truncated, the directory synced), or
/// without `dir` an unnamed file in the temporary directory (`O_TMPFILE`), which
/// disappears with the last process holding it, so no run, however it ends, leaves one
/// behind. `tag` makes the fallback name of a file system without `O_TMPFILE` unique.
///
/// # Errors
/// The file system refused.
pub fn create_log(
    dir: Option<&std::path::Path>,
    name: &str,
    tag: &str,
) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true);
    match dir {
        Some(dir) => {
            let f = opts.create(true).truncate(true).mode(0o600).open(dir.join(name))?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(f)
        }
        None => {
            let dir = std::env::temp_dir();
            opts.custom_flags(nix::libc::O_TMPFILE).mode(0o600).open(&dir).or_else(|_| {
                // A file system without O_TMPFILE: create, then unlink at once.
                let path = dir.join(format!("bank-{tag}-{name}"));
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                std::fs::remove_file(&path)?;
                Ok(f)
            })
        }
    }
}
