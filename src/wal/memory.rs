//! An in-memory log for the simulation: what is committed survives a crash; what is not
//! may survive in part, as a torn tail that replay cuts off.

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
}
