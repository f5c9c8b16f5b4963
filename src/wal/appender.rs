//! The write end of one log file: records buffered, then written with zeros ahead and
//! forced. [`super::WalFile`] is one of these over one file; [`super::CheckpointedWal`]
//! is one of these over its live segment, moved to the other file at a checkpoint. Both
//! get their costs from here, so group commit costs the same in either (one `write` and
//! one `fdatasync` per commit).
//!
//! Forced records go into space written with zeros ahead of time, a [`PREALLOCATE`]d
//! chunk at a time, so that a force (`fdatasync`) writes data only, not a new file size:
//! measured on these machines, ~110-130 µs instead of ~190 µs (notes/platform-limits.md,
//! "fdatasync on an appended file ≈ fsync"). A zero header is never a record (every
//! record has a payload), so replay stops cleanly at the zeros and keeps them.

use super::record::encode_record;
use super::WalError;
use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// How much zeroed space a force writes ahead when the records reach the file's end.
pub const PREALLOCATE: u64 = 128 * 1024;

/// Appends framed records to one open file.
#[derive(Debug)]
pub(super) struct Appender {
    file: File,
    /// Records appended since the last write, framed.
    buf: Vec<u8>,
    /// Bytes of records written to the file (durable up to the last sync): where the
    /// next record goes.
    len: u64,
    /// The file's size: `len` plus the zeros written ahead.
    cap: u64,
}

impl Appender {
    /// Writes after the first `valid` bytes of `file`, a file of `size` bytes. What
    /// follows `valid` is kept as zeros written ahead if `zeros_ahead`, else it is a
    /// torn tail: cut off, and the cut forced, so that the next record follows the last
    /// intact one and nothing after it can ever be read as a record again.
    ///
    /// # Errors
    /// The cut could not be made or forced.
    pub(super) fn resume(
        file: File,
        valid: u64,
        size: u64,
        zeros_ahead: bool,
    ) -> std::io::Result<Appender> {
        let cap = if zeros_ahead {
            size
        } else {
            if size > valid {
                file.set_len(valid)?;
                file.sync_data()?;
            }
            valid
        };
        Ok(Appender { file, buf: Vec::new(), len: valid, cap })
    }

    /// Buffers one framed value (a record, or a segment's header).
    pub(super) fn append<T: Serialize>(&mut self, value: &T) -> Result<(), WalError> {
        encode_record(value, &mut self.buf)
    }

    /// The file.
    pub(super) fn file(&self) -> &File {
        &self.file
    }

    /// How many bytes wait in the buffer: a mark for [`Appender::discard_from`].
    pub(super) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Forgets what was buffered after `mark` (a header appended with a record that then
    /// failed to encode).
    pub(super) fn discard_from(&mut self, mark: usize) {
        self.buf.truncate(mark);
    }

    /// Whether records wait for a write.
    pub(super) fn is_dirty(&self) -> bool {
        !self.buf.is_empty()
    }

    /// [`Appender::write_ahead`], then [`Appender::sync`].
    pub(super) fn commit(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.write_ahead()?;
        self.sync()
    }

    /// Writes every buffered record in one `write`, with a chunk of zeros after it when
    /// the records reach the end of the zeros written before; does not force it.
    pub(super) fn write_ahead(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let end = self.len + self.buf.len() as u64;
        if end > self.cap {
            // Zeros ahead, in the same write as the records and synced with this force;
            // the next forces overwrite them.
            let cap = end.div_ceil(PREALLOCATE) * PREALLOCATE;
            self.buf.resize(self.buf.len() + (cap - end) as usize, 0);
            self.cap = cap;
        }
        self.file.write_all_at(&self.buf, self.len)?;
        self.len = end;
        self.buf.clear();
        Ok(())
    }

    /// Forces everything written so far (one `fdatasync`).
    pub(super) fn sync(&mut self) -> Result<(), WalError> {
        self.file.sync_data()?;
        Ok(())
    }

    /// Writes every buffered record, without zeros ahead and without forcing it.
    pub(super) fn write_buffered(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.buf, self.len)?;
        self.len += self.buf.len() as u64;
        self.cap = self.cap.max(self.len);
        self.buf.clear();
        Ok(())
    }

    /// Bytes of records written to the file (the zeros written ahead not counted).
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The file, given up (a checkpointed log's old segment, to be truncated).
    pub(super) fn into_file(self) -> File {
        self.file
    }
}
