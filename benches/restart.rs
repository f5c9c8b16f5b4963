//! `cargo bench --bench restart`: the figures of issue 22 (a bank that restarts from its
//! logs), each the median of several runs, in one invocation:
//!
//! * committed two-phase-commit transfers per second, 8 nodes, live load, with
//!   `--data-dir` (every record forced before anyone is told) against without (the same
//!   run, alternating); target: at least 0.8×;
//! * `--resume` of 8 nodes after `RESUME_TRANSFERS` committed transfers (1,000,000 by
//!   default; 10,000,000 for the second target), from the start of the process to the
//!   end of its `Check`; target: at most 1 s;
//! * `bank-master log DIR` of that data directory, to /dev/null: MB/s, and the time a
//!   100 MB log would take at that rate; target: at most 2 s.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;
use common::{committed_per_s, median_f};

const RUNS: usize = 5;

fn main() {
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_bank-master"));
    let tmp = std::env::temp_dir().join(format!("bank-bench-restart-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");

    // 1. Throughput with and without a data directory, alternating.
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let dir = tmp.join(format!("tput-{run}"));
        std::fs::create_dir_all(&dir).expect("dir");
        without.push(load(&bin, &tmp, None, 40_000));
        with.push(load(&bin, &tmp, Some(&dir), 40_000));
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (w, wo) = (median_f(with.clone()), median_f(without.clone()));
    println!("{:52} {:10.0} /s  {with:.0?}", "committed transfers/s, 8 nodes, --data-dir", w);
    println!("{:52} {:10.0} /s  {without:.0?}", "committed transfers/s, 8 nodes, no data dir", wo);
    let ratio = w / wo;
    println!("{:52} {:10.2} x  target >= 0.80: {}", "with / without", ratio, met(ratio >= 0.8));

    // 2. Resume after many committed transfers.
    let n: u64 =
        std::env::var("RESUME_TRANSFERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tmp.join("resume");
    std::fs::create_dir_all(&dir).expect("dir");
    let t0 = Instant::now();
    let rate = load(&bin, &tmp, Some(&dir), n);
    println!(
        "{:52} {:10.1} s  ({rate:.0} committed/s)",
        format!("a bank of 8 nodes after {n} transfers, made in"),
        t0.elapsed().as_secs_f64()
    );
    let bytes: u64 = std::fs::read_dir(&dir)
        .expect("read the data dir")
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let mut resumes = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = Command::new(&bin)
            .args(["--resume", "--data-dir"])
            .arg(&dir)
            .arg(write(&tmp, "check.txt", "Check\n"))
            .stderr(Stdio::null())
            .output()
            .expect("run the resume");
        let secs = t.elapsed().as_secs_f64();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("CHECK OK"), "resume: {stdout}");
        resumes.push(secs);
    }
    let r = median_f(resumes.clone());
    println!(
        "{:52} {:10.3} s  {resumes:.3?}  target <= 1 s: {}",
        format!("--resume of 8 nodes, {:.0} MB of logs", bytes as f64 / 1e6),
        r,
        met(r <= 1.0)
    );

    // 3. The log dump of that directory.
    let mut dumps = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let status = Command::new(&bin)
            .arg("log")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run log");
        assert!(status.success(), "log: {status}");
        dumps.push(t.elapsed().as_secs_f64());
    }
    let d = median_f(dumps.clone());
    let mb_s = bytes as f64 / 1e6 / d;
    let per_100 = 100.0 / mb_s;
    println!(
        "{:52} {:10.1} MB/s  ({:.2} s for 100 MB)  target <= 2 s: {}",
        format!("log DIR ({:.0} MB)", bytes as f64 / 1e6),
        mb_s,
        per_100,
        met(per_100 <= 2.0)
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

fn met(yes: bool) -> &'static str {
    if yes {
        "MET"
    } else {
        "NOT MET"
    }
}

fn write(tmp: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = tmp.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// One live load of `n` transfers on 8 nodes (with `dir` as the data directory): the
/// committed transfers per second its LOAD line gives.
fn load(bin: &Path, tmp: &Path, dir: Option<&Path>, n: u64) -> f64 {
    let mut text = String::from("StartMaster\n");
    for i in 1..=8 {
        text.push_str(&format!("CreateNode {i} 1000000000\n"));
    }
    text.push_str(&format!("Live on\nLoad {n} transfers seed 1\nCheck\n"));
    let file = write(tmp, "load.txt", &text);
    let mut cmd = Command::new(bin);
    cmd.args(["--seed", "1"]);
    if let Some(d) = dir {
        cmd.arg("--data-dir").arg(d);
    }
    let out = cmd.arg(&file).stderr(Stdio::null()).output().expect("run bank-master");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CHECK OK"), "load: {stdout}");
    let line = stdout.lines().find(|l| l.starts_with("LOAD ")).expect("a LOAD line");
    committed_per_s(line)
}
