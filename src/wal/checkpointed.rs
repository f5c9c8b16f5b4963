//! A write-ahead log that checkpoints: two files used in turn (ping-pong segments), so
//! that recovery replays one checkpoint and the records after it, not the node's whole
//! life (notes/accounts-and-restart.md §4.2, with the two files the master hands a node
//! instead of a directory of `node-<id>.<seq>.wal` files).
//!
//! * Each file, when in use, holds one **segment**: a [`SegmentHeader`] (node, seq, the
//!   number of its first record), then records. Writing is the [`Appender`]'s, as for
//!   [`super::WalFile`]: group commit, one `write` and one `fdatasync` per commit, into
//!   zeros written ahead. Segment 0's header goes out with the log's first commit.
//! * [`CheckpointedWal::checkpoint`] writes segment seq+1 into the other file: its
//!   header and the caller's checkpoint record in one write, forced; only then does it
//!   become the live segment and the old file is truncated to 0. The other file is
//!   truncated (and that forced) before it is written, so no stale record of an older
//!   segment can ever follow a live one's tail (why SQLite salts its frames; here the
//!   file is simply emptied, as notes §4.2 asks of "fresh files").
//! * **Opening** reads both files ([`scan_segment`]). A segment *counts* if its header
//!   is whole and, after segment 0, its checkpoint too (a checkpoint torn by a crash
//!   never counts). The live segment is the newest that counts. Its torn tail is cut
//!   off; a corrupt record anywhere in it is an error naming the file and the byte.
//!
//! Why a crash anywhere in a checkpoint is safe, step by step (the tests write each
//! state by hand): (1) while the other file is emptied and the new segment written, the
//! old segment is untouched and still counts; the new one is missing, or torn (its
//! checkpoint's sectors are written or zero), or whole. (2) once the new segment is
//! forced it counts and has the higher seq, so it is live whether or not (3) the old
//! file has been truncated yet. A segment with seq > 0 is only ever written after the
//! one before it is durable, so "the newest segment does not count" always leaves the
//! one just before it, whole: anything else is [`WalError::Lost`].
//!
//! The node driver owns one of these (in place of a `WalFile`) and decides when to
//! checkpoint from [`CheckpointedWal::since_checkpoint`]; this module knows nothing of
//! what a checkpoint record holds.

use super::appender::Appender;
use super::segment::{scan_segment, SegmentHeader, SegmentScan};
use super::torn::LogEnd;
use super::WalError;
use serde::{de::DeserializeOwned, Serialize};
use std::fs::File;
use std::marker::PhantomData;
use std::os::unix::fs::{FileExt, MetadataExt};

/// A write-ahead log of records of type `R` over two files, with checkpoints.
#[derive(Debug)]
pub struct CheckpointedWal<R> {
    /// The live segment's file, and the records waiting to be written to it.
    live: Appender,
    /// The file not in use: empty, or the segment before the live one (a crash came
    /// before a checkpoint truncated it), or a torn attempt at the next one. A
    /// checkpoint empties it before writing to it.
    other: File,
    /// Which of the two files given to `open` is `live` (0 or 1), for messages.
    live_index: usize,
    /// Names the log in messages and errors.
    label: String,
    node: u64,
    /// The live segment's seq.
    seq: u64,
    /// The number of the live segment's first record.
    first_number: u64,
    /// Records in the live segment, buffered ones included (the header not counted).
    records: u64,
    /// A checkpoint failed while the next segment was being written (see
    /// [`WalError::CheckpointFailed`]).
    broken: bool,
    _records: PhantomData<fn(R) -> R>,
}

/// What opening a log found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered<R> {
    /// The live segment's records, oldest first. In a segment after the first,
    /// `records[0]` is the checkpoint that began it.
    pub records: Vec<R>,
    /// The number of `records[0]` (records are numbered from 0 since the log was
    /// created, across checkpoints).
    pub first_number: u64,
    /// The live segment's seq: 0 until the first checkpoint.
    pub segment: u64,
}

impl<R: Serialize + DeserializeOwned> CheckpointedWal<R> {
    /// Opens node `node`'s log from its two files (two empty files are a new log) and
    /// returns the live segment's records. A torn tail of the live segment is cut off
    /// (zeros written ahead are kept); nothing else is written. `label` names the log
    /// in messages ("node 3 log"), followed by which file: `(file 0)` or `(file 1)`, in
    /// the order given.
    ///
    /// # Errors
    /// * [`WalError::Foreign`]: a file holds another node's segment, another format, or
    ///   something that is not a segment; or both are the same file.
    /// * [`WalError::Corrupt`]: a record of the live segment, or a header, or the
    ///   newest segment's checkpoint, is damaged (not torn).
    /// * [`WalError::Lost`]: the newest segment does not count and the other file does
    ///   not hold the segment before it.
    /// * [`WalError::Io`]: a file could not be read, or the torn tail not cut.
    pub fn open(
        files: [File; 2],
        node: u64,
        label: &str,
    ) -> Result<(CheckpointedWal<R>, Recovered<R>), WalError> {
        let labels = [file_label(label, 0), file_label(label, 1)];
        let meta = [files[0].metadata()?, files[1].metadata()?];
        if (meta[0].dev(), meta[0].ino()) == (meta[1].dev(), meta[1].ino()) {
            // A checkpoint would empty the live segment to write the next one.
            let why = "both files are the same file".to_string();
            return Err(WalError::Foreign { label: label.to_string(), why });
        }
        let mut scans = [
            read_segment(&files[0], meta[0].len(), node, &labels[0])?,
            read_segment(&files[1], meta[1].len(), node, &labels[1])?,
        ];
        let live_index = live_segment(&scans, label)?.unwrap_or(0);
        let [file0, file1] = files;
        let (file, other) = if live_index == 0 { (file0, file1) } else { (file1, file0) };
        let (valid, zeros_ahead) = match &scans[live_index].end {
            LogEnd::Clean { valid_to, .. } => (*valid_to, true),
            LogEnd::Torn { offset, bytes, .. } => {
                log::warn!(
                    "{}: cut {bytes} bytes of torn tail at byte {offset} after {} records",
                    labels[live_index],
                    scans[live_index].records.len()
                );
                (*offset, false)
            }
            LogEnd::Corrupt { offset, fault } => {
                let label = labels[live_index].clone();
                return Err(WalError::Corrupt { label, offset: *offset, fault: fault.clone() });
            }
        };
        if let LogEnd::Corrupt { offset, fault } = &scans[1 - live_index].end {
            // The older segment: no longer read, and emptied by the next checkpoint.
            log::warn!(
                "{}: stale segment, corrupt at byte {offset}: {fault}",
                labels[1 - live_index]
            );
        }
        let scan = &mut scans[live_index];
        let header = scan.header.unwrap_or(SegmentHeader::new(node, 0, 0));
        let records: Vec<R> =
            std::mem::take(&mut scan.records).into_iter().map(|r| r.record).collect();
        let live = Appender::resume(file, valid, meta[live_index].len(), zeros_ahead)?;
        let wal = CheckpointedWal {
            live,
            other,
            live_index,
            label: label.to_string(),
            node,
            seq: header.seq,
            first_number: header.first_number,
            records: records.len() as u64,
            broken: false,
            _records: PhantomData,
        };
        let recovered =
            Recovered { records, first_number: header.first_number, segment: header.seq };
        Ok((wal, recovered))
    }

    /// Buffers one record (after the live segment's header, if this is the log's first
    /// record). It is not durable until [`CheckpointedWal::commit`].
    ///
    /// # Errors
    /// The record could not be encoded (nothing is buffered then).
    pub fn append(&mut self, rec: &R) -> Result<(), WalError> {
        let mark = self.live.buffered();
        if self.live.len() == 0 && mark == 0 {
            // Segment 0's header goes out with the first record, never alone.
            self.live.append(&self.header())?;
        }
        if let Err(e) = self.live.append(rec) {
            self.live.discard_from(mark);
            return Err(e);
        }
        self.records += 1;
        Ok(())
    }

    /// Whether records wait for a commit.
    pub fn is_dirty(&self) -> bool {
        self.live.is_dirty()
    }

    /// Writes every buffered record and forces it to disk (one write, one `fdatasync`):
    /// all records appended since the last commit become durable together.
    ///
    /// # Errors
    /// The write or the sync failed (nothing buffered may be assumed durable), or a
    /// checkpoint failed before.
    pub fn commit(&mut self) -> Result<(), WalError> {
        self.usable()?;
        self.live.commit()
    }

    /// Writes every buffered record, with zeros ahead of it as [`CheckpointedWal::commit`]
    /// does, and does not force it yet: [`CheckpointedWal::sync`] does.
    ///
    /// # Errors
    /// The write failed, or a checkpoint failed before.
    pub fn write_ahead(&mut self) -> Result<(), WalError> {
        self.usable()?;
        self.live.write_ahead()
    }

    /// Forces every record written so far (one `fdatasync`).
    ///
    /// # Errors
    /// The sync failed; nothing written since the last sync may be assumed durable.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.live.sync()
    }

    /// Writes every buffered record without forcing it: it survives a killed process,
    /// not a lost machine.
    ///
    /// # Errors
    /// The write failed, or a checkpoint failed before.
    pub fn write_buffered(&mut self) -> Result<(), WalError> {
        self.usable()?;
        self.live.write_buffered()
    }

    /// Bytes written to the live segment, its header included (the zeros written ahead
    /// not counted).
    pub fn len(&self) -> u64 {
        self.live.len()
    }

    /// Whether nothing has been written to the live segment (only a new log's can be
    /// empty: a checkpoint's segment starts with its header and checkpoint).
    pub fn is_empty(&self) -> bool {
        self.live.len() == 0
    }

    /// How many records the live segment holds after its checkpoint (all of them in
    /// segment 0), buffered ones included: the caller checkpoints when this is large
    /// enough.
    pub fn since_checkpoint(&self) -> u64 {
        if self.seq == 0 {
            self.records
        } else {
            self.records - 1
        }
    }

    /// The number the next record appended will have.
    pub fn next_number(&self) -> u64 {
        self.first_number + self.records
    }

    /// The number of the live segment's first record (its checkpoint, after segment 0).
    pub fn first_number(&self) -> u64 {
        self.first_number
    }

    /// The live segment's seq: how many checkpoints the log has had.
    pub fn segment(&self) -> u64 {
        self.seq
    }

    /// The label given to [`CheckpointedWal::open`].
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Starts a new segment with `first`, a checkpoint: a record from which, with the
    /// records after it, the caller can recover everything it needs. Records still
    /// buffered are committed first, to the old segment. Then (1) the other file is
    /// emptied (forced, if it held anything); (2) the new segment's header, `first`
    /// and zeros ahead go to it in one write, forced (its size changed: `fsync`); (3)
    /// it becomes the live segment; (4) the old file is truncated to 0 and that forced.
    /// A crash anywhere leaves the old segment or the new one to recover from.
    ///
    /// # Errors
    /// A write or sync failed. After a failure in (2) every later write fails with
    /// [`WalError::CheckpointFailed`] until the log is reopened (see there); after one
    /// in (4), the new segment is live and durable and the log goes on (the next
    /// checkpoint empties the old file first), but as with any failed sync the caller
    /// should stop (notes §4.3, "fsyncgate").
    pub fn checkpoint(&mut self, first: &R) -> Result<(), WalError> {
        self.usable()?;
        self.live.commit()?;
        if self.live.len() == 0 {
            // A new log with nothing in it yet: its segment 0 must count before segment
            // 1 is written, or a torn segment 1 would leave no segment at all.
            self.live.append(&self.header())?;
            self.live.commit()?;
        }
        if self.other.metadata()?.len() > 0 {
            // A crash before the last checkpoint's step (4), or a torn attempt at this
            // one: emptied, and durably so before the new segment goes in.
            self.other.set_len(0)?;
            self.other.sync_all()?;
        }
        let header = SegmentHeader::new(self.node, self.seq + 1, self.next_number());
        let mut next = Appender::resume(self.other.try_clone()?, 0, 0, true)?;
        next.append(&header)?;
        next.append(first)?;
        self.broken = true;
        next.write_ahead()?;
        next.file().sync_all()?;
        let old = std::mem::replace(&mut self.live, next).into_file();
        self.broken = false;
        self.other = old;
        self.live_index = 1 - self.live_index;
        self.seq = header.seq;
        self.first_number = header.first_number;
        self.records = 1;
        // Only now is the old segment obsolete.
        self.other.set_len(0)?;
        self.other.sync_all()?;
        log::debug!(
            "{}: checkpoint #{} begins segment {} (file {})",
            self.label,
            self.first_number,
            self.seq,
            self.live_index
        );
        Ok(())
    }

    /// The live segment's header.
    fn header(&self) -> SegmentHeader {
        SegmentHeader::new(self.node, self.seq, self.first_number)
    }

    fn usable(&self) -> Result<(), WalError> {
        if self.broken {
            return Err(WalError::CheckpointFailed { label: self.label.clone() });
        }
        Ok(())
    }
}

fn file_label(label: &str, i: usize) -> String {
    format!("{label} (file {i})")
}

/// Reads one of the log's files (`len` bytes) and refuses it if it holds something
/// else than a segment of node `node`'s log, or a damaged header (then whether it held
/// the live segment cannot be known).
fn read_segment<R: DeserializeOwned>(
    file: &File,
    len: u64,
    node: u64,
    label: &str,
) -> Result<SegmentScan<R>, WalError> {
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    let scan = scan_segment::<R>(&bytes)
        .map_err(|e| WalError::Foreign { label: label.to_string(), why: e.why })?;
    match (&scan.header, &scan.end) {
        (Some(h), _) if h.node != node => Err(WalError::Foreign {
            label: label.to_string(),
            why: format!("a segment of node {}'s log, not node {node}'s", h.node),
        }),
        (None, LogEnd::Corrupt { offset, fault }) => Err(WalError::Corrupt {
            label: label.to_string(),
            offset: *offset,
            fault: fault.clone(),
        }),
        _ => Ok(scan),
    }
}

/// Which file holds the live segment: `None` for a log with nothing in it yet.
fn live_segment<R>(scans: &[SegmentScan<R>; 2], label: &str) -> Result<Option<usize>, WalError> {
    let seq = |i: usize| scans[i].header.map(|h| h.seq);
    // A segment counts if its header is whole and, after segment 0, its checkpoint too.
    let counts = |i: usize| seq(i).is_some_and(|s| s == 0 || !scans[i].records.is_empty());
    let (newest, older) = match (seq(0), seq(1)) {
        (None, None) => return Ok(None),
        (Some(a), Some(b)) if a == b => {
            let why = format!("both files hold segment {a}");
            return Err(WalError::Foreign { label: label.to_string(), why });
        }
        (a, b) if a > b => (0, 1),
        _ => (1, 0),
    };
    if counts(newest) {
        return Ok(Some(newest));
    }
    let n = seq(newest).expect("the newest has a header");
    if let LogEnd::Corrupt { offset, fault } = &scans[newest].end {
        // A damaged checkpoint: whether it was forced (and the older file since
        // emptied) cannot be known.
        let label = file_label(label, newest);
        return Err(WalError::Corrupt { label, offset: *offset, fault: fault.clone() });
    }
    // The newest is a checkpoint a crash tore before it was forced: its predecessor,
    // untouched until then, is live.
    if seq(older) == Some(n - 1) && counts(older) {
        return Ok(Some(older));
    }
    let holds = match seq(older) {
        None => "no segment".to_string(),
        Some(s) if counts(older) => format!("segment {s}"),
        Some(s) => format!("segment {s}, torn too"),
    };
    let why = format!("segment {n} in file {newest} is torn, and file {older} holds {holds}");
    Err(WalError::Lost { label: label.to_string(), why })
}

#[cfg(test)]
mod tests;
