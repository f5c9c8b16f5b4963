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

/// 200 forced 64-byte writes on a fresh file in `tmp`: each appended (the file grows,
/// so the force writes its size too), or (`ahead`) each overwriting zeros written and
/// forced beforehand.
pub fn fsync_costs(tmp: &Path, ahead: bool) -> Vec<Duration> {
    use std::os::unix::fs::FileExt;
    let path = tmp.join(if ahead { "ahead.dat" } else { "append.dat" });
    let file = std::fs::File::create(&path).expect("create");
    let n = 200;
    if ahead {
        file.write_all_at(&vec![0u8; 64 * n], 0).expect("zeros");
        file.sync_all().expect("sync");
    }
    let record = [7u8; 64];
    let times = (0..n)
        .map(|i| {
            let t = Instant::now();
            file.write_all_at(&record, (64 * i) as u64).expect("write");
            file.sync_data().expect("fdatasync");
            t.elapsed()
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    times
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
