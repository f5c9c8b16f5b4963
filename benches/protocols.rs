//! `cargo bench --bench protocols`: the three commit protocols side by side, 8 nodes,
//! fsync on (issue 11). Per protocol:
//! * committed-transfer latency, median and p99, of 300 `Transfer 1 2 1 via 3 protocol P`
//!   in live mode (nodes deliver to each other; a script would route every message
//!   through the master) through a piped master, the coordinator apart (layout B of the
//!   notes), each followed by one append + fsync measured in the same moment as the
//!   baseline;
//! * the messages and forced writes per committed transfer that `Stats` prints;
//! * committed transfers/s of a live `Load 20000 transfers` under `Protocol P`.
//!
//! Targets: median latency at most 1.2x (forced writes on the critical path x fsync),
//! and 3PC's and Paxos Commit's throughput at least half of 2PC's.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::{committed_per_s, figure, median, median_f, ms, percentile, Appender};

const PROTOCOLS: [&str; 3] = ["2pc", "3pc", "paxos"];
/// Forced writes in sequence on the path to the answer, layout B (notes §3.2): 2PC the
/// votes (in parallel) and the decision; 3PC the votes, PreCommitting, the
/// participants' PreCommitted (in parallel) and the commit; Paxos Commit the votes with
/// their accepts (in parallel) and the coordinator's accepts.
const CRITICAL_WRITES: [f64; 3] = [2.0, 4.0, 2.0];

fn main() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_bank-master"));
    let tmp = std::env::temp_dir().join(format!("bank-bench-protocols-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let mut rates = Vec::new();
    for (i, p) in PROTOCOLS.iter().enumerate() {
        let (lat, fsync, stats) = latency(&bin, &tmp, p);
        let (med, p99, f) = (median(lat.clone()), percentile(lat, 99), median(fsync));
        println!(
            "{p:6} live latency, 8 nodes, via 3  N=300  median {:.3} ms  p99 {:.3} ms   fsync {:.3} ms",
            ms(med),
            ms(p99),
            ms(f)
        );
        println!("{p:6} per committed transfer: {stats}");
        let budget = 1.2 * CRITICAL_WRITES[i] * f.as_secs_f64();
        println!(
            "{p:6} target median <= 1.2 x {} forced writes x fsync = {:.3} ms: {} (ratio {:.2})",
            CRITICAL_WRITES[i],
            budget * 1e3,
            if med.as_secs_f64() <= budget { "MET" } else { "NOT MET" },
            med.as_secs_f64() / budget
        );
        let rate = throughput(&bin, &tmp, p);
        println!("{p:6} live Load 20000 transfers, 8 nodes: {rate:.0} committed/s");
        rates.push(rate);
    }
    for (i, p) in PROTOCOLS.iter().enumerate().skip(1) {
        let ratio = rates[i] / rates[0];
        println!(
            "{p:6} throughput >= half of 2pc's: {} (ratio {ratio:.2})",
            if ratio >= 0.5 { "MET" } else { "NOT MET" }
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// 300 committed transfers one at a time, each followed by an append + fsync; and the
/// `Stats` line of the protocol afterwards.
fn latency(bin: &Path, tmp: &Path, protocol: &str) -> (Vec<Duration>, Vec<Duration>, String) {
    let (mut child, mut input, mut output) = common::piped_master(bin);
    let mut text = String::from("StartMaster\n");
    for i in 1..=8 {
        text.push_str(&format!("CreateNode {i} 1000000\n"));
    }
    write!(input, "{text}Live on\nBalances\n").expect("write");
    let mut line = String::new();
    for _ in 0..8 {
        line.clear();
        output.read_line(&mut line).expect("read");
    }
    let mut appender = Appender::new(tmp, &format!("fsync-{protocol}.dat"));
    let (mut lat, mut fsync) = (Vec::new(), Vec::new());
    for i in 0..300 {
        let t = Instant::now();
        writeln!(input, "Transfer 1 2 1 via 3 protocol {protocol}").expect("write");
        line.clear();
        output.read_line(&mut line).expect("read");
        assert!(line.ends_with("COMMITTED\n"), "{protocol} transfer {i}: {line}");
        lat.push(t.elapsed());
        fsync.push(appender.force(false));
    }
    writeln!(input, "Stats").expect("write");
    let mut stats = String::new();
    loop {
        line.clear();
        if output.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix(&format!("protocol {protocol} ")) {
            stats = rest.trim().to_string();
            break;
        }
    }
    drop(input);
    let _ = child.wait();
    (lat, fsync, stats)
}

/// Committed transfers per second of a live load under `protocol` (median of 3).
fn throughput(bin: &Path, tmp: &Path, protocol: &str) -> f64 {
    let setup = format!("Protocol {protocol}\n");
    median_f(figure(bin, tmp, 8, &setup, "Load 20000 transfers seed 1", 3, committed_per_s))
}
