//! What both benchmarks measure the same way: medians and percentiles, and the disk's
//! price of one promise (a 64-byte record forced with fdatasync), the baseline of every
//! figure that waits for a force.

use std::io::BufReader;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A master reading commands from a pipe: the child, its input, its output by lines.
pub fn piped_master(bin: &Path) -> (Child, ChildStdin, BufReader<ChildStdout>) {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bank-master");
    let input = child.stdin.take().expect("piped");
    let output = BufReader::new(child.stdout.take().expect("piped"));
    (child, input, output)
}

/// 200 forced 64-byte writes on a fresh file in `tmp`, with `fdatasync`: each appended
/// (the file grows, so the force writes its size too), or (`ahead`) each overwriting
/// zeros written and forced beforehand.
pub fn fsync_costs(tmp: &Path, ahead: bool) -> Vec<Duration> {
    use std::os::unix::fs::FileExt;
    let n = 200;
    let mut log = Appender::new(tmp, if ahead { "ahead.dat" } else { "append.dat" });
    if ahead {
        log.file.write_all_at(&vec![0u8; 64 * n], 0).expect("zeros");
        log.file.sync_all().expect("sync");
    }
    (0..n).map(|_| log.force(true)).collect()
}

/// A file that grows by one 64-byte record per [`Appender::force`], as a log without
/// space written ahead would: the baseline the latency targets name.
pub struct Appender {
    file: std::fs::File,
    path: std::path::PathBuf,
    len: u64,
}

impl Appender {
    /// A fresh file `name` in `tmp`, removed on drop.
    pub fn new(tmp: &Path, name: &str) -> Appender {
        let path = tmp.join(name);
        let file = std::fs::File::create(&path).expect("create");
        Appender { file, path, len: 0 }
    }

    /// Appends one 64-byte record and forces it: `fsync`, or `fdatasync` when `data_only`.
    /// Returns how long both took.
    pub fn force(&mut self, data_only: bool) -> Duration {
        use std::os::unix::fs::FileExt;
        let t = Instant::now();
        self.file.write_all_at(&[7u8; 64], self.len).expect("write");
        if data_only {
            self.file.sync_data().expect("fdatasync");
        } else {
            self.file.sync_all().expect("fsync");
        }
        self.len += 64;
        t.elapsed()
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The `p`-th percentile.
pub fn percentile(mut v: Vec<Duration>, p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

/// The median.
pub fn median(v: Vec<Duration>) -> Duration {
    percentile(v, 50)
}

/// In milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
