//! `cargo bench --bench live`: live mode (issue 4) against the machine's limits, each
//! figure the median of several runs, beside baselines measured in the same invocation:
//! * one append of 64 bytes + fdatasync (the price of one promise on this disk);
//! * one socket round trip between two processes (64 bytes there and back);
//! * the one-way message rate between two processes (64-byte messages, written in
//!   batches as the nodes write them).
//!
//! Figures and targets of issue 10 (2-core machines): async Sends per second with 8 nodes
//! (at least 5,000,000) and 64 nodes; committed two-phase-commit transfers per second
//! with 8 nodes, fsync on (at least 100,000, with no abort); time from `BeginSnapshot` to
//! a complete `CollectState` during a load, 8 nodes (at most 5 ms) and 64 nodes (at most
//! 50 ms).
//!
//! `BENCH_BASELINE=<commit> cargo bench --bench live` times that commit's release build
//! too (built once, see `common::Baseline`), run by run in turn with this one, and prints
//! every live figure beside its baseline with a verdict against 5% worse: the four load
//! figures (each run a fresh master) and both snapshot figures (each run a fresh master
//! under load: two runs of each binary, their samples pooled). Not compared: the socket
//! and fsync baselines (the machine, not the binary).

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::{
    committed_per_s, figure, fsync_costs, median, median_f, ms, per_s, piped_master, Better, Bins,
    Comparison,
};

const RUNS: usize = 5;

fn main() {
    let bins = Bins::from_env();
    let mut cmp = Comparison::default();
    let tmp = std::env::temp_dir().join(format!("bank-bench-live-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");

    println!("baselines (same run)");
    let fsync = median(fsync_costs(&tmp, false));
    println!("{:44} {:9.3} ms", "append 64 B + fdatasync (median of 200)", ms(fsync));
    let (rtt, rate) = socket_baselines();
    println!("{:44} {:9.3} ms", "socket round trip, 2 processes (median of 2000)", ms(rtt));
    println!("{:44} {:9.0} msgs/s", "one-way 64 B messages, 2 processes", rate);

    // The 8-node figures first, while the host is quietest: 64 processes (and the page
    // cache their logs leave to write back) load it for a while afterwards.
    println!("live mode, median of {RUNS} runs [min - max]");
    // Each snapshot run is a master of its own under load: one run as before, two of
    // each binary in turn against a baseline.
    let snap_runs = if bins.base.is_some() { 2 } else { 1 };
    let (snap8, base) = pooled(bins.paired(snap_runs, |bin| snapshot_under_load(bin, 8)));
    report("BeginSnapshot -> CollectState, 8 nodes", &snap8, "ms");
    cmp.add("BeginSnapshot -> CollectState, 8 nodes", "ms", Better::Lower, &snap8, &base);
    let (tx8, base) =
        figure(&bins, &tmp, 8, "", "Load 40000 transfers seed 1", RUNS, committed_per_s);
    report("committed transfers/s, 8 nodes, fsync on", &tx8, "/s");
    cmp.add("committed transfers/s, 8 nodes, fsync on", "/s", Better::Higher, &tx8, &base);
    let (sends8, base) = figure(&bins, &tmp, 8, "", "Load 400000 sends seed 1", RUNS, per_s);
    report("async Sends/s, 8 nodes", &sends8, "/s");
    cmp.add("async Sends/s, 8 nodes", "/s", Better::Higher, &sends8, &base);
    let (sends64, base) = figure(&bins, &tmp, 64, "", "Load 400000 sends seed 1", 3, per_s);
    report("async Sends/s, 64 nodes", &sends64, "/s");
    cmp.add("async Sends/s, 64 nodes", "/s", Better::Higher, &sends64, &base);
    let (snap64, base) = pooled(bins.paired(snap_runs, |bin| snapshot_under_load(bin, 64)));
    report("BeginSnapshot -> CollectState, 64 nodes", &snap64, "ms");
    cmp.add("BeginSnapshot -> CollectState, 64 nodes", "ms", Better::Lower, &snap64, &base);

    let m = |v: &[f64]| median_f(v.to_vec());
    println!("targets");
    verdict(
        "async Sends/s, 8 nodes >= 5,000,000",
        m(&sends8) >= 5_000_000.0,
        m(&sends8) / rate,
        "x one-way rate",
    );
    verdict(
        "committed transfers/s, 8 nodes >= 100,000",
        m(&tx8) >= 100_000.0,
        m(&tx8) * fsync.as_secs_f64(),
        "transfers per fsync time",
    );
    verdict(
        "snapshot under load, 8 nodes <= 5 ms",
        m(&snap8) <= 5.0,
        m(&snap8) / ms(rtt),
        "x socket round trip",
    );
    verdict(
        "snapshot under load, 64 nodes <= 50 ms",
        m(&snap64) <= 50.0,
        m(&snap64) / ms(rtt),
        "x socket round trip",
    );
    cmp.print(&bins);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Every run's samples together, for this build and the baseline.
fn pooled((new, base): (Vec<Vec<f64>>, Vec<Vec<f64>>)) -> (Vec<f64>, Vec<f64>) {
    (new.concat(), base.concat())
}

fn report(name: &str, v: &[f64], unit: &str) {
    let (lo, hi) =
        (v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
    let med = median_f(v.to_vec());
    if unit == "ms" {
        println!("{name:44} {med:9.2} ms  [{lo:.2} - {hi:.2}]  N={}", v.len());
    } else {
        println!("{name:44} {med:9.0} {unit} [{lo:.0} - {hi:.0}]  N={}", v.len());
    }
}

fn verdict(what: &str, met: bool, ratio: f64, per: &str) {
    println!("{what:44} {}  ({ratio:.2} {per})", if met { "MET" } else { "NOT MET" });
}

/// Milliseconds from writing `BeginSnapshot` to reading the last line of the gathered
/// snapshot, nine times while a load of mixed operations runs.
fn snapshot_under_load(bin: &Path, n: usize) -> Vec<f64> {
    let (mut child, mut input, mut output) = piped_master(bin);
    let mut setup = String::from("StartMaster\n");
    for i in 1..=n {
        setup.push_str(&format!("CreateNode {i} 1000000000\n"));
    }
    setup.push_str("Live on\nLoad 100000000 mixed seed 1 async\n");
    input.write_all(setup.as_bytes()).expect("write");
    let block = 2 + n + n * (n - 1);
    let mut line = String::new();
    let mut times = Vec::new();
    for i in 0..9 {
        let t = Instant::now();
        input.write_all(b"BeginSnapshot 1\nCollectState\nPrintSnapshot\n").expect("write");
        input.flush().expect("flush");
        for _ in 0..=block {
            line.clear();
            output.read_line(&mut line).expect("read");
        }
        let d = t.elapsed();
        if i > 0 {
            times.push(ms(d)); // the first one waits for the load to start
        }
    }
    input.write_all(b"KillAll\n").expect("write");
    drop(input);
    let _ = child.wait();
    times
}

/// Round trips and a one-way stream of 64-byte messages between this process and a
/// forked child over a Unix socket pair.
fn socket_baselines() -> (Duration, f64) {
    let (mut a, mut b) = UnixStream::pair().expect("socket pair");
    // SAFETY: this bench is single-threaded here; the child only reads and writes its
    // end of the socket and exits.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            drop(a);
            let mut buf = [0u8; 64];
            for _ in 0..2000 {
                if b.read_exact(&mut buf).is_err() || b.write_all(&buf).is_err() {
                    std::process::exit(1);
                }
            }
            let mut sink = vec![0u8; 1 << 16];
            while matches!(b.read(&mut sink), Ok(k) if k > 0) {}
            std::process::exit(0);
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(b);
            let mut buf = [7u8; 64];
            let mut rtts = Vec::new();
            for _ in 0..2000 {
                let t = Instant::now();
                a.write_all(&buf).expect("write");
                a.read_exact(&mut buf).expect("read");
                rtts.push(t.elapsed());
            }
            let batch = vec![7u8; 64 * 256];
            let n = 4000;
            let t = Instant::now();
            for _ in 0..n {
                a.write_all(&batch).expect("write");
            }
            drop(a);
            let _ = nix::sys::wait::waitpid(child, None);
            let rate = (n * 256) as f64 / t.elapsed().as_secs_f64();
            (median(rtts), rate)
        }
    }
}
