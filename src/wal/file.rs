//! The on-disk log of one file: append buffers, `commit` forces everything buffered with
//! one sync. The writing itself (zeros written ahead, one `write` per commit) is the
//! [`Appender`]'s, shared with [`super::CheckpointedWal`]; this file adds the opening:
//! replay, and cutting a torn tail off. It never tells a torn tail from damage (it cuts
//! either): [`super::CheckpointedWal`] does.

use super::appender::Appender;
use super::record::decode_prefix;
use super::WalError;
use serde::{de::DeserializeOwned, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// A write-ahead log file of records of type `R`.
#[derive(Debug)]
pub struct WalFile<R> {
    tail: Appender,
    path: PathBuf,
    _records: PhantomData<fn(R) -> R>,
}

impl<R: Serialize + DeserializeOwned> WalFile<R> {
    /// Opens (creating it if needed) the log at `path`, replays it, and cuts off a torn
    /// tail so that later appends follow the last intact record. Returns the records.
    ///
    /// # Errors
    /// The file or its directory could not be opened, read, truncated or synced.
    pub fn open(path: &Path) -> Result<(WalFile<R>, Vec<R>), WalError> {
        let existed = path.exists();
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        if !existed {
            // A new file is durable only once its directory entry is.
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            File::open(dir)?.sync_all()?;
        }
        Self::from_file(file, path)
    }

    /// Takes an open log file (one inherited from the master, say), replays it and cuts
    /// off a torn tail, as [`WalFile::open`] does. `path` names it in messages only.
    ///
    /// # Errors
    /// The file could not be read, truncated or synced.
    pub fn from_file(mut file: File, path: &Path) -> Result<(WalFile<R>, Vec<R>), WalError> {
        file.seek(SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let replay = decode_prefix::<R>(&bytes);
        let zeros_ahead = bytes[replay.valid_len..].iter().all(|&b| b == 0);
        if !zeros_ahead {
            log::warn!(
                "wal {}: cut {} bytes of torn tail after {} records",
                path.display(),
                replay.torn,
                replay.records.len()
            );
        }
        let tail =
            Appender::resume(file, replay.valid_len as u64, bytes.len() as u64, zeros_ahead)?;
        let wal = WalFile { tail, path: path.to_path_buf(), _records: PhantomData };
        Ok((wal, replay.records))
    }

    /// Buffers one record. It is not durable until [`WalFile::commit`].
    ///
    /// # Errors
    /// The record could not be encoded.
    pub fn append(&mut self, rec: &R) -> Result<(), WalError> {
        self.tail.append(rec)
    }

    /// Whether records wait for a commit.
    pub fn is_dirty(&self) -> bool {
        self.tail.is_dirty()
    }

    /// Writes every buffered record and forces it to disk (one write, one `fdatasync`):
    /// all records appended since the last commit become durable together.
    ///
    /// # Errors
    /// The write or the sync failed; nothing buffered may be assumed durable.
    pub fn commit(&mut self) -> Result<(), WalError> {
        self.tail.commit()
    }

    /// Writes every buffered record, with zeros ahead of it as [`WalFile::commit`] does,
    /// and does not force it yet: [`WalFile::sync`] does. Between the two the caller may
    /// send what depends only on the records being written, not on their being durable.
    ///
    /// # Errors
    /// The write failed.
    pub fn write_ahead(&mut self) -> Result<(), WalError> {
        self.tail.write_ahead()
    }

    /// Forces every record written so far (one `fdatasync`).
    ///
    /// # Errors
    /// The sync failed; nothing written since the last sync may be assumed durable.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.tail.sync()
    }

    /// Writes every buffered record without forcing it: it survives a killed process
    /// (the page cache outlives it), not a lost machine.
    ///
    /// # Errors
    /// The write failed.
    pub fn write_buffered(&mut self) -> Result<(), WalError> {
        self.tail.write_buffered()
    }

    /// Bytes of records written to the file (the zeros written ahead not counted).
    pub fn len(&self) -> u64 {
        self.tail.len()
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.tail.len() == 0
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::super::appender::PREALLOCATE;
    use super::super::record::encode_record;
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("bank-wal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    // Durability: committed records come back on reopen, in order; uncommitted ones do not.
    #[test]
    fn committed_records_survive_a_reopen() {
        let d = dir("reopen");
        let path = d.0.join("node.wal");
        let (mut w, got) = WalFile::<u64>::open(&path).unwrap();
        assert!(got.is_empty() && w.is_empty());
        for i in 0..10u64 {
            w.append(&i).unwrap();
        }
        w.commit().unwrap();
        w.append(&99).unwrap();
        drop(w); // 99 was never committed: a crash before the force
        let (mut w, got) = WalFile::<u64>::open(&path).unwrap();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        w.append(&10).unwrap();
        w.commit().unwrap();
        let (_, got) = WalFile::<u64>::open(&path).unwrap();
        assert_eq!(got, (0..=10).collect::<Vec<_>>());
    }

    // Forces write into zeros written ahead: the file does not grow with every force, a
    // reopen keeps the zeros and appends right after the last record; a torn record in
    // the zeros is cut off with them.
    #[test]
    fn forces_overwrite_zeros_written_ahead() {
        let d = dir("ahead");
        let path = d.0.join("node.wal");
        let (mut w, _) = WalFile::<u64>::open(&path).unwrap();
        w.append(&1).unwrap();
        w.commit().unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        assert_eq!(size(), PREALLOCATE, "one chunk written ahead");
        for i in 2..=100u64 {
            w.append(&i).unwrap();
            w.commit().unwrap();
        }
        assert_eq!(size(), PREALLOCATE, "forces overwrite the zeros");
        let used = w.len();
        drop(w);
        let (mut w, got) = WalFile::<u64>::open(&path).unwrap();
        assert_eq!(got, (1..=100).collect::<Vec<_>>());
        assert_eq!((w.len(), size()), (used, PREALLOCATE), "zeros kept, no warning to give");
        w.append(&101).unwrap();
        w.write_buffered().unwrap();
        drop(w);
        let (_, got) = WalFile::<u64>::open(&path).unwrap();
        assert_eq!(got.last(), Some(&101));
        // A record torn inside the zeros: its header and half its payload made it.
        let mut bytes = std::fs::read(&path).unwrap();
        let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
        let mut torn = Vec::new();
        encode_record(&u64::MAX, &mut torn).unwrap();
        bytes[end..end + torn.len() - 2].copy_from_slice(&torn[..torn.len() - 2]);
        std::fs::write(&path, &bytes).unwrap();
        let (w, got) = WalFile::<u64>::open(&path).unwrap();
        assert_eq!(got.len(), 101);
        assert_eq!(size(), w.len(), "the torn record is cut off, zeros and all");
    }

    // Written ahead then synced (what a node does around the links that promise
    // nothing): the records are in the file before the sync, into the zeros written
    // ahead, and a reopen finds them.
    #[test]
    fn write_ahead_then_sync_is_a_commit_in_two_steps() {
        let d = dir("two-steps");
        let path = d.0.join("node.wal");
        let (mut w, _) = WalFile::<u64>::open(&path).unwrap();
        for i in 0..3u64 {
            w.append(&i).unwrap();
        }
        w.write_ahead().unwrap();
        assert!(!w.is_dirty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PREALLOCATE, "zeros ahead");
        let (_, got) = WalFile::<u64>::open(&path).unwrap();
        assert_eq!(got, vec![0, 1, 2], "written before the sync");
        w.sync().unwrap();
        drop(w);
        let (_, got) = WalFile::<u64>::open(&path).unwrap();
        assert_eq!(got, vec![0, 1, 2]);
    }

    // What the accessors say: dirty while records wait, the length of records only, the
    // path given; a commit with nothing buffered writes nothing; a buffered write grows
    // the file by the records alone (no zeros ahead).
    #[test]
    fn accessors_say_what_is_buffered_and_written() {
        let d = dir("accessors");
        let path = d.0.join("node.wal");
        let (mut w, _) = WalFile::<u64>::open(&path).unwrap();
        assert_eq!(w.path(), path.as_path());
        assert!(w.is_empty() && !w.is_dirty());
        w.commit().unwrap();
        w.write_ahead().unwrap();
        w.write_buffered().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "nothing to write");
        w.append(&7).unwrap();
        assert!(w.is_dirty() && w.is_empty(), "buffered, not written");
        w.write_buffered().unwrap();
        let one = w.len();
        assert!(!w.is_dirty() && !w.is_empty() && one > 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), one, "no zeros ahead");
        w.append(&8).unwrap();
        w.commit().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PREALLOCATE);
        assert_eq!(w.len(), 2 * one);
        let (w, got) = WalFile::<u64>::open(&path).unwrap();
        assert_eq!((got, w.len()), (vec![7, 8], 2 * one));
    }

    // Torn tail on disk: reopening cuts it off, and later records follow the intact prefix.
    #[test]
    fn a_torn_file_is_cut_and_appends_follow_the_prefix() {
        let d = dir("torn");
        let path = d.0.join("node.wal");
        let (mut w, _) = WalFile::<String>::open(&path).unwrap();
        for s in ["alpha", "beta", "gamma"] {
            w.append(&s.to_string()).unwrap();
        }
        w.commit().unwrap();
        let full = w.len();
        drop(w);
        for cut in 0..full {
            let bytes = std::fs::read(&path).unwrap();
            let torn = d.0.join(format!("cut{cut}.wal"));
            std::fs::write(&torn, &bytes[..cut as usize]).unwrap();
            let (mut w, got) = WalFile::<String>::open(&torn).unwrap();
            let valid = w.len();
            assert_eq!(std::fs::metadata(&torn).unwrap().len(), valid, "cut {cut}: tail removed");
            w.append(&"delta".to_string()).unwrap();
            w.commit().unwrap();
            let (_, again) = WalFile::<String>::open(&torn).unwrap();
            let mut want = got.clone();
            want.push("delta".to_string());
            assert_eq!(again, want, "cut {cut}");
        }
    }
}
