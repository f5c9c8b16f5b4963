//! An in-memory log for the simulation: what is committed survives a crash; what is not
//! may survive in part, as a torn tail that replay cuts off. A checkpoint starts it over.

use super::record::{decode_prefix, encode_record, Replay};
use super::WalError;
use serde::{de::DeserializeOwned, Serialize};
use std::marker::PhantomData;

/// A log held in memory, with the same append/commit contract as [`super::WalFile`].
#[derive(Debug, Clone, Default)]
pub struct MemoryWal<R> {
    durable: Vec<u8>,
    buf: Vec<u8>,
    _records: PhantomData<fn(R) -> R>,
}

impl<R: Serialize + DeserializeOwned> MemoryWal<R> {
    /// An empty log.
    pub fn new() -> Self {
        MemoryWal { durable: Vec::new(), buf: Vec::new(), _records: PhantomData }
    }

    /// Buffers one record.
    ///
    /// # Errors
    /// The record could not be encoded.
    pub fn append(&mut self, rec: &R) -> Result<(), WalError> {
        encode_record(rec, &mut self.buf)
    }

    /// Makes every buffered record durable.
    pub fn commit(&mut self) {
        self.durable.append(&mut self.buf);
    }

    /// The process dies: the first `reached_disk` buffered bytes happened to reach the
    /// disk without a sync (possibly half a record), the rest is lost. Then the log is
    /// replayed as a restart would, and its torn tail cut off.
    pub fn crash(&mut self, reached_disk: usize) -> Replay<R> {
        let keep = reached_disk.min(self.buf.len());
        self.durable.extend_from_slice(&self.buf[..keep]);
        self.buf.clear();
        let replay = decode_prefix(&self.durable);
        self.durable.truncate(replay.valid_len);
        replay
    }

    /// Starts the log over from `first`, a checkpoint: the log then holds `first` alone
    /// (records still buffered go with the old log, as a file log's do). Atomic here, as the simulation needs; the crash
    /// windows of a real checkpoint are [`super::CheckpointedWal`]'s, tested there.
    ///
    /// # Errors
    /// `first` could not be encoded (the log is unchanged).
    pub fn checkpoint(&mut self, first: &R) -> Result<(), WalError> {
        let mut segment = Vec::new();
        encode_record(first, &mut segment)?;
        self.buf.clear();
        self.durable = segment;
        Ok(())
    }

    /// Every durable record.
    pub fn records(&self) -> Vec<R> {
        decode_prefix(&self.durable).records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Presumed durability: a crash keeps committed records and never a torn one.
    #[test]
    fn a_crash_keeps_exactly_the_committed_records_and_whole_survivors() {
        for reached in 0..40 {
            let mut w = MemoryWal::<(u8, u32)>::new();
            w.append(&(1, 10)).unwrap();
            w.commit();
            w.append(&(2, 20)).unwrap();
            w.append(&(3, 30)).unwrap();
            let r = w.crash(reached);
            assert_eq!(r.records[0], (1, 10));
            assert!(r.records.len() <= 3);
            assert_eq!(w.records(), r.records, "the torn tail is gone after replay");
            w.append(&(4, 40)).unwrap();
            w.commit();
            assert_eq!(w.records().last(), Some(&(4, 40)), "appends follow the prefix");
        }
    }

    // A checkpoint replaces everything before it: a crash after it replays the
    // checkpoint and what was committed since, and appends follow.
    #[test]
    fn a_checkpoint_starts_the_log_over() {
        let mut w = MemoryWal::<(u8, u32)>::new();
        w.append(&(1, 10)).unwrap();
        w.commit();
        w.append(&(2, 20)).unwrap();
        w.checkpoint(&(0, 30)).unwrap();
        w.append(&(3, 40)).unwrap();
        w.commit();
        w.append(&(4, 50)).unwrap();
        assert_eq!(w.crash(0).records, vec![(0, 30), (3, 40)]);
    }
}
