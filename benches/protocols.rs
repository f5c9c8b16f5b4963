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
//!
//! `BENCH_BASELINE=<commit> cargo bench --bench protocols` times that commit's release
//! build too (built once, see `common::Baseline`) and prints, per protocol, the latency
//! (a baseline master beside this build's, the two taking transfers in turn) and the
//! throughput (runs in turn) beside the baseline's, with a verdict against 5% worse. The
//! fsync beside each transfer is the machine's and is not compared.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::{
    committed_per_s, figure, median, median_f, ms, percentile, Appender, Better, Bins, Comparison,
};

const PROTOCOLS: [&str; 3] = ["2pc", "3pc", "paxos"];
/// Forced writes in sequence on the path to the answer, layout B (notes §3.2): 2PC the
/// votes (in parallel) and the decision; 3PC the votes, PreCommitting, the
/// participants' PreCommitted (in parallel) and the commit; Paxos Commit the votes with
/// their accepts (in parallel) and the coordinator's accepts.
const CRITICAL_WRITES: [f64; 3] = [2.0, 4.0, 2.0];

fn main() {
    let bins = Bins::from_env();
    let mut cmp = Comparison::default();
    let tmp = std::env::temp_dir().join(format!("bank-bench-protocols-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let mut rates = Vec::new();
    for (i, p) in PROTOCOLS.iter().enumerate() {
        let Latency { lat, fsync, stats, base } = latency(&bins, &tmp, p);
        let in_ms = |v: &[Duration]| v.iter().map(|&d| ms(d)).collect::<Vec<f64>>();
        let name = format!("{p} live latency, 8 nodes, via 3, median");
        cmp.add(&name, "ms", Better::Lower, &in_ms(&lat), &in_ms(&base));
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
        let (rate, base) = throughput(&bins, &tmp, p);
        let name = format!("{p} live Load 20000 transfers, 8 nodes");
        cmp.add(&name, "/s", Better::Higher, &rate, &base);
        let rate = median_f(rate);
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
    cmp.print(&bins);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// What `latency` measures.
struct Latency {
    /// Each committed transfer's latency.
    lat: Vec<Duration>,
    /// An append + fsync after each.
    fsync: Vec<Duration>,
    /// The protocol's `Stats` line.
    stats: String,
    /// The baseline's latencies (empty without one).
    base: Vec<Duration>,
}

/// Eight live nodes behind a piped master, ready for transfers.
struct Eight {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    line: String,
}

impl Eight {
    fn start(bin: &Path) -> Eight {
        let (child, mut input, mut output) = common::piped_master(bin);
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
        Eight { child, input, output, line }
    }

    /// One committed transfer under `protocol`: its latency.
    fn transfer(&mut self, protocol: &str, i: usize) -> Duration {
        let t = Instant::now();
        writeln!(self.input, "Transfer 1 2 1 via 3 protocol {protocol}").expect("write");
        self.line.clear();
        self.output.read_line(&mut self.line).expect("read");
        assert!(self.line.ends_with("COMMITTED\n"), "{protocol} transfer {i}: {}", self.line);
        t.elapsed()
    }

    /// The protocol's `Stats` line; ends the run.
    fn stats(mut self, protocol: &str) -> String {
        writeln!(self.input, "Stats").expect("write");
        let mut stats = String::new();
        loop {
            self.line.clear();
            if self.output.read_line(&mut self.line).expect("read") == 0 {
                break;
            }
            if let Some(rest) = self.line.strip_prefix(&format!("protocol {protocol} ")) {
                stats = rest.trim().to_string();
                break;
            }
        }
        drop(self.input);
        let _ = self.child.wait();
        stats
    }
}

/// 300 committed transfers one at a time, each followed by an append + fsync; and the
/// `Stats` line of the protocol afterwards. With a baseline, its master runs beside this
/// build's and the two take transfers in turn.
fn latency(bins: &Bins, tmp: &Path, protocol: &str) -> Latency {
    let mut new = Eight::start(&bins.new);
    let mut base = bins.base_bin().map(Eight::start);
    let mut appender = Appender::new(tmp, &format!("fsync-{protocol}.dat"));
    let (mut lat, mut fsync, mut base_lat) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..300 {
        let base_first = i % 2 == 1;
        if let (Some(b), true) = (&mut base, base_first) {
            base_lat.push(b.transfer(protocol, i));
        }
        lat.push(new.transfer(protocol, i));
        fsync.push(appender.force(false));
        if let (Some(b), false) = (&mut base, base_first) {
            base_lat.push(b.transfer(protocol, i));
        }
    }
    if let Some(b) = base {
        b.stats(protocol);
    }
    let stats = new.stats(protocol);
    Latency { lat, fsync, stats, base: base_lat }
}

/// Committed transfers per second of a live load under `protocol`: 3 runs (and 3 of the
/// baseline's, in turn).
fn throughput(bins: &Bins, tmp: &Path, protocol: &str) -> (Vec<f64>, Vec<f64>) {
    let setup = format!("Protocol {protocol}\n");
    figure(bins, tmp, 8, &setup, "Load 20000 transfers seed 1", 3, committed_per_s)
}
