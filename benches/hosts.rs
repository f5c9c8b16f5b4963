//! `cargo bench --bench hosts`: nodes on several hosts (issue 13, SPEC chapter 10), in
//! the network lab of the tests (three host namespaces on a bridge, the master in a
//! fourth; `tests/util/netlab.rs`). Medians, beside the same figures on one machine
//! measured in the same invocation:
//! * large8 on three hosts against large8 on one machine, both started in the master's
//!   namespace by `ip netns exec` (target: at most 1.5x);
//! * committed transfers per second of a live load, six nodes on three hosts and here;
//! * the handshake (TCP connect + Noise NNpsk0) from the master's namespace to an agent;
//! * the cost of forcing plain Sends (on one machine, in the master's namespace) (what every node on several hosts does): large8
//!   and a live load of Sends with logs on disk (`--data-dir`, which forces them too)
//!   against unnamed logs that are not forced.
//!
//! Needs root with `ip netns` and nftables, and `../shared` for large8; otherwise it
//! says what it skipped.
//!
//! No `BENCH_BASELINE` comparison here: the lab's agents start this build's binary, so a
//! baseline master would drive new nodes. The other benches compare.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/util/mod.rs"]
mod util;

mod common;
use common::{committed_per_s, median, median_f, ms, per_s};

const RUNS: usize = 7;

fn time(mut cmd: Command) -> Duration {
    let t = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().expect("run");
    let d = t.elapsed();
    assert!(out.code().is_some_and(|c| c <= 1), "{cmd:?} failed");
    d
}

fn load_file(tmp: &Path, name: &str, load: &str) -> PathBuf {
    let mut text = String::from("StartMaster\n");
    for i in 1..=6 {
        text.push_str(&format!("CreateNode {i} 1000000000\n"));
    }
    text.push_str(&format!("Live on\n{load}\nCheck\n"));
    let f = tmp.join(name);
    std::fs::write(&f, text).unwrap();
    f
}

fn load_figure(mut cmd: Command, pick: fn(&str) -> f64) -> f64 {
    let out = cmd.stderr(Stdio::null()).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CHECK OK"), "{stdout}");
    pick(stdout.lines().find(|l| l.starts_with("LOAD ")).expect("a LOAD line"))
}

/// `runs` rounds of `a` then `b`, so both see the same moments of a noisy machine.
fn alternate<T>(runs: usize, a: impl Fn() -> T, b: impl Fn() -> T) -> (Vec<T>, Vec<T>) {
    (0..runs).map(|_| (a(), b())).unzip()
}

fn main() {
    if std::env::var("BENCH_BASELINE").is_ok_and(|v| !v.trim().is_empty()) {
        println!("BENCH_BASELINE: not compared here (the lab's agents run this build)");
    }
    let bin = util::bin();
    let shared = util::root().join("../shared");
    if !shared.is_dir() {
        println!("SKIPPED: ../shared is not beside the repository; nothing to measure");
        return;
    }
    let Some(lab) = util::netlab::Lab::new("the several-hosts benchmark", 3) else {
        println!("SKIPPED: the network lab needs root, ip netns and nftables");
        return;
    };
    let tmp = util::TempDir::new("bench-hosts");
    let large8 = shared.join("peer-testcases/generated/large8.txt");
    let l8 = large8.to_str().unwrap();

    // One machine, in the master's namespace too, through the same `ip netns exec`.
    let here = |args: &[&str]| {
        let mut c = lab.command_in("m", &bin);
        c.args(["--seed", "1"]).args(args);
        c
    };
    let (here_t, hosts_t) =
        alternate(RUNS, || time(here(&[l8])), || time(lab.master_command(1, &[l8])));
    let (h, r) = (median(here_t), median(hosts_t));
    let ratio = ms(r) / ms(h);
    println!(
        "large8: {:.1} ms on three hosts, {:.1} ms here: {ratio:.2}x (target <= 1.50x: {})",
        ms(r),
        ms(h),
        if ratio <= 1.5 { "MET" } else { "MISSED" }
    );

    // Committed transfers per second.
    let tx = load_file(&tmp.0, "tx.txt", "Load 20000 transfers seed 1");
    let tx = tx.to_str().unwrap();
    let (here_r, hosts_r) = alternate(
        5,
        || load_figure(here(&[tx]), committed_per_s),
        || load_figure(lab.master_command(1, &[tx]), committed_per_s),
    );
    println!(
        "committed transfers/s, six nodes: {:.0} on three hosts, {:.0} here",
        median_f(hosts_r),
        median_f(here_r)
    );

    // The handshake, from the master's namespace.
    let key =
        bank::transport::noise::Key::from_hex(&std::fs::read_to_string(&lab.key).unwrap()).unwrap();
    let agent = format!("{}.1:{}", util::netlab::NET, util::netlab::PORT);
    let times = lab.in_ns("m", move || {
        (0..50)
            .map(|_| {
                let t = Instant::now();
                let c = bank::transport::tcp::dial(&agent, &key, 0, "master", "agent")
                    .expect("dial the agent");
                let d = t.elapsed();
                drop(c);
                d
            })
            .collect::<Vec<_>>()
    });
    println!(
        "handshake (TCP connect + Noise NNpsk0) to an agent: {:.3} ms median",
        ms(median(times))
    );

    // Forcing plain Sends: logs on disk with --data-dir are forced like on several hosts.
    let dd = tmp.0.join("data");
    let ddir = dd.to_str().unwrap();
    let (lazy, forced) =
        alternate(RUNS, || time(here(&[l8])), || time(here(&["--data-dir", ddir, l8])));
    let (a, b) = (median(lazy), median(forced));
    println!(
        "large8 with plain Sends forced: {:.1} ms, not forced: {:.1} ms ({:.2}x)",
        ms(b),
        ms(a),
        ms(b) / ms(a)
    );
    let sends = load_file(&tmp.0, "sends.txt", "Load 200000 sends seed 1");
    let sends = sends.to_str().unwrap();
    let (lazy, forced) = alternate(
        5,
        || load_figure(here(&[sends]), per_s),
        || load_figure(here(&["--data-dir", ddir, sends]), per_s),
    );
    let (a, b) = (median_f(lazy), median_f(forced));
    println!("Sends/s, six nodes: {b:.0} forced, {a:.0} not forced ({:.2}x)", b / a);
}
