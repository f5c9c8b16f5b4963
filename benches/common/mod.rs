//! What the benchmarks measure the same way: medians and percentiles, and the disk's
//! price of one promise (a 64-byte record forced with fdatasync), the baseline of every
//! figure that waits for a force.

// Each bench compiles this module for itself and uses part of it.
#![allow(dead_code)]

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

/// Runs `load` on `n` nodes in live mode `runs` times, after the command lines `setup`;
/// `pick` reads the figure from the LOAD line.
pub fn figure(
    bin: &Path,
    tmp: &Path,
    n: usize,
    setup: &str,
    load: &str,
    runs: usize,
    pick: fn(&str) -> f64,
) -> Vec<f64> {
    let file = tmp.join(format!("live{n}.txt"));
    let mut text = String::from("StartMaster\n");
    for i in 1..=n {
        text.push_str(&format!("CreateNode {i} 1000000000\n"));
    }
    text.push_str(&format!("{setup}Live on\n{load}\nCheck\n"));
    std::fs::write(&file, text).expect("write");
    (0..runs)
        .map(|_| {
            let out = Command::new(bin)
                .args(["--seed", "1"])
                .arg(&file)
                .stderr(Stdio::null())
                .output()
                .expect("run bank-master");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("CHECK OK"), "{load} on {n} nodes: {stdout}");
            let line = stdout.lines().find(|l| l.starts_with("LOAD ")).expect("a LOAD line");
            pick(line)
        })
        .collect()
}

pub fn field(line: &str, name: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

pub fn per_s(line: &str) -> f64 {
    field(line, "per_s=")
}

pub fn committed_per_s(line: &str) -> f64 {
    field(line, "committed=") / (field(line, "elapsed_ms=").max(1.0) / 1000.0)
}

pub fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
