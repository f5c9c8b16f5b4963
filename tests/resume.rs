//! A bank that restarts from its logs (SPEC chapter 11): `--resume --data-dir DIR`.
//!
//! * A scripted run left money and transactions in flight: after the resume every
//!   amount is counted once, every transaction ended the same at all of its nodes, `T<n>`
//!   goes on, and a `StartMaster` is the usual rejected line.
//! * Directories that hold no bank cannot be resumed (exit status 2, DIR named).
//! * The master SIGKILLed at a random moment of a live load (in some runs its whole
//!   process group at once): after the resume `CHECK OK` with every unit ever created,
//!   and every transfer printed COMMITTED is committed at each of its nodes.
//!   `KILL_RUNS=<n>` runs n of these (3 by default), `KILL_SEED=<s>` one.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{run_with, TempDir};

fn run(args: &[&str], stdin: &str) -> util::Run {
    run_with(args, Some(stdin), Duration::from_secs(90))
}

// Sends not received, a transfer and a transaction mid-way, accounts: all come back.
#[test]
fn what_was_in_flight_is_delivered_once_and_every_transaction_ends_alike() {
    let tmp = TempDir::new("resume-flight");
    let d = tmp.0.to_str().unwrap();
    let first = "StartMaster\nCreateNode 1 100\nCreateNode 2 100\nCreateNode 3 100\n\
                 CreateAccount A 2 50\nSend 1 2 10\nSend 2 3 20\nSend 1 2 5\nReceive 2 1\n\
                 Transfer 1 3 30 nowait\nReceive 3 1\n\
                 Transaction A:-7 3:+3 1:+4 nowait protocol paxos\nTransfer 3 A 9\n";
    let r = run(&["--data-dir", d], first);
    assert_eq!(r.status, 0, "{r:?}");
    assert!(r.stdout.contains("Transfer T3 COMMITTED"), "{}", r.stdout);
    let then = "Check\nTxStatus T1\nTxStatus T2\nTxStatus T3\nTransfer 1 2 1\nStartMaster\n\
                ReceiveAll\nCheck\n";
    let r = run(&["--resume", "--data-dir", d], then);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "CHECK OK total=350", "{r:?}");
    for (i, tx) in ["T1", "T2", "T3"].iter().enumerate() {
        let line = lines[1 + i];
        assert!(line.starts_with(tx), "{line}");
        let word = if line.contains(" COMMITTED ") { "COMMITTED" } else { "ABORTED" };
        let at_nodes: Vec<&str> = line.split(' ').filter(|w| w.contains('=')).collect();
        assert!(
            at_nodes.iter().all(|w| w.ends_with(&format!("={word}")) || w.ends_with("=NONE")),
            "{line}"
        );
    }
    assert!(lines[3].starts_with("T3 COMMITTED"), "{}", lines[3]);
    assert_eq!(lines[4], "Transfer T4 COMMITTED", "T<n> goes on: {r:?}");
    assert_eq!(lines[5], "CHECK OK total=350");
    assert_eq!(r.status, 1, "the StartMaster line is rejected");
    assert_eq!(
        r.stderr,
        "error: line 6: StartMaster: a system is already running (KillAll ends it)\n"
    );
}

// What cannot be resumed says why, names the directory, and starts nothing.
#[test]
fn an_empty_foreign_or_damaged_directory_cannot_be_resumed() {
    let tmp = TempDir::new("resume-bad");
    let d = tmp.0.to_str().unwrap();
    let r = run(&["--resume", "--data-dir", d], "Check\n");
    assert_eq!(r.status, 2, "{r:?}");
    assert!(r.stderr.contains(&format!("cannot resume from {d}: it holds no node log")), "{r:?}");
    let r = run(&["--resume"], "Check\n");
    assert_eq!(r.status, 2, "{r:?}");
    assert!(r.stderr.contains("give --data-dir DIR"), "{r:?}");
    std::fs::write(tmp.0.join("node-1.wal"), "not a log at all, but text\n").unwrap();
    let r = run(&["--resume", "--data-dir", d], "Check\n");
    assert_eq!(r.status, 2, "{r:?}");
    assert!(r.stderr.contains("node-1.wal: the record at byte 0 is damaged"), "{r:?}");
    // A real log with one bit flipped in its second record.
    let good = TempDir::new("resume-flip");
    let g = good.0.to_str().unwrap();
    let r = run(&["--data-dir", g], "StartMaster\nCreateNode 1 5\nCreateNode 2 5\nSend 1 2 1\n");
    assert_eq!(r.status, 0, "{r:?}");
    let path = good.0.join("node-1.wal");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[13] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let r = run(&["--resume", "--data-dir", g], "Check\n");
    assert_eq!(r.status, 2, "{r:?}");
    assert!(r.stderr.contains("node-1.wal: the record at byte 10 is damaged"), "{r:?}");
    assert!(r.stdout.is_empty());
}

/// One kill run: a live load and transfers printed one by one, the master (or its
/// process group) SIGKILLed after `after` transfer lines, then a resume that checks.
fn kill_and_resume(seed: u64) {
    let tmp = TempDir::new("resume-kill");
    let d = tmp.0.to_str().unwrap();
    let mut child = Command::new(util::bin())
        .args(["--data-dir", d, "--seed", &seed.to_string()])
        .env_remove("RUST_LOG")
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the master");
    let master = child.id() as i32;
    let mut stdin = child.stdin.take().expect("piped");
    let mut script = String::from("StartMaster\n");
    for n in 1..=4 {
        script += &format!("CreateNode {n} 100000\nCreateAccount ACC{n} {n} 5000\n");
    }
    script += &format!("Live on\nLoad 5000000 mixed seed {seed} async\n");
    for k in 0..400u64 {
        let (a, b) = (1 + k % 4, 1 + (k + 1 + seed) % 4);
        let (a, b) = if a == b { (a, 1 + b % 4) } else { (a, b) };
        script += &format!("Transfer ACC{a} ACC{b} {}\n", 1 + (k * 7 + seed) % 40);
    }
    // The script goes in from a thread: the pipe may fill while the master runs.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let after = 3 + (seed * 13) % 40;
    let mut committed = Vec::new();
    // Read on a thread: a master that printed nothing more must not hang the test.
    let (tx, lines) = crossbeam_channel::unbounded();
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < after {
        let Ok(line) = lines.recv_deadline(deadline) else { break };
        if let Some(rest) = line.strip_prefix("Transfer ") {
            seen += 1;
            if let Some(tx) = rest.strip_suffix(" COMMITTED") {
                committed.push(tx.to_string());
            }
        }
    }
    assert_eq!(seen, after, "seed {seed}: the master printed too few transfers");
    let children = children_of(master);
    let target = if seed % 3 == 0 { -master } else { master }; // the group, or the master
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(target),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    drop(lines);
    let _ = reader.join(); // the pipe closed with the master
    let _ = writer.join();
    // The nodes die with the master (parent-death signal): wait until they have, so no
    // old process writes a log the resumed one reads.
    wait_gone(&children);
    let mut then = String::new();
    for tx in &committed {
        then += &format!("TxStatus {tx}\n");
    }
    then += "Check\n";
    let r = run(&["--resume", "--data-dir", d], &then);
    assert_eq!(r.status, 0, "seed {seed}: {r:?}");
    let out: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(out.len(), committed.len() + 1, "seed {seed}: {r:?}");
    for (tx, line) in committed.iter().zip(&out) {
        let want = format!("{tx} COMMITTED");
        assert!(line.starts_with(&want), "seed {seed}: {line}");
        assert!(
            line.split(' ').filter(|w| w.contains('=')).all(|w| w.ends_with("=COMMITTED")),
            "seed {seed}: printed COMMITTED, not applied everywhere: {line}"
        );
    }
    let total = 4 * (100_000 + 5_000);
    assert_eq!(
        out.last().copied(),
        Some(format!("CHECK OK total={total}").as_str()),
        "seed {seed}"
    );
}

/// The processes `pid` started (its children, from /proc).
fn children_of(pid: i32) -> Vec<i32> {
    let mut kids = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return kids };
    for t in tasks.filter_map(Result::ok) {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            kids.extend(s.split_whitespace().filter_map(|w| w.parse::<i32>().ok()));
        }
    }
    kids
}

/// Waits (10 s at most) until none of `pids` runs: gone, or a zombie waiting for init.
fn wait_gone(pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for &p in pids {
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            if stat.is_empty() || state == Some('Z') || state == Some('X') {
                break;
            }
            assert!(Instant::now() < deadline, "process {p} outlived its master");
            std::thread::yield_now();
        }
    }
}

#[test]
fn a_master_killed_mid_load_leaves_a_bank_that_resumes_whole() {
    for seed in util::seeds("KILL_SEED", "KILL_RUNS", 3) {
        kill_and_resume(seed);
    }
}
