//! The on-disk log: append buffers, `commit` forces everything buffered with one sync.

use super::record::{decode_prefix, encode_record};
use super::WalError;
use serde::{de::DeserializeOwned, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// A write-ahead log file of records of type `R`.
#[derive(Debug)]
pub struct WalFile<R> {
    file: File,
    path: PathBuf,
    /// Records appended since the last commit, framed.
    buf: Vec<u8>,
    /// Bytes written to the file (durable up to the last `commit`).
    len: u64,
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
        if replay.torn > 0 {
            log::warn!(
                "wal {}: cut {} bytes of torn tail after {} records",
                path.display(),
                replay.torn,
                replay.records.len()
            );
            file.set_len(replay.valid_len as u64)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::Start(replay.valid_len as u64))?;
        let wal = WalFile {
            file,
            path: path.to_path_buf(),
            buf: Vec::new(),
            len: replay.valid_len as u64,
            _records: PhantomData,
        };
        Ok((wal, replay.records))
    }

    /// Buffers one record. It is not durable until [`WalFile::commit`].
    ///
    /// # Errors
    /// The record could not be encoded.
    pub fn append(&mut self, rec: &R) -> Result<(), WalError> {
        encode_record(rec, &mut self.buf)
    }

    /// Whether records wait for a commit.
    pub fn is_dirty(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes every buffered record and forces it to disk (one write, one `fdatasync`):
    /// all records appended since the last commit become durable together.
    ///
    /// # Errors
    /// The write or the sync failed; nothing buffered may be assumed durable.
    pub fn commit(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        self.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes every buffered record without forcing it: it survives a killed process
    /// (the page cache outlives it), not a lost machine.
    ///
    /// # Errors
    /// The write failed.
    pub fn write_buffered(&mut self) -> Result<(), WalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        self.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Bytes written to the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
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
