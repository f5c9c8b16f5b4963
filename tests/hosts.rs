//! Nodes on several hosts (SPEC chapter 10), in a network lab of namespaces on this
//! machine (`util::netlab`): the same files print byte-identical stdout on three hosts
//! as on one, with 10% loss on every link too; a live load rides out a host cut off for
//! 5 s; strangers are refused while a run goes on; remote faults and a killed master
//! leave no node behind; agents started over ssh do all of it too.
//! As root with `ip netns` and nftables (`.ci/run` installs it); otherwise each test
//! prints a skip line, and fails under `CI=true`.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;
use util::netlab::{self, Lab, NET, PORT, STRANGER};
use util::{assert_same, run_file};

/// Every command file of the suites whose output is fixed: the project's, the course's
/// examples, the COS418 files and the course's test1-test5.
fn every_file() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut add_dir = |dir: &Path, only: &dyn Fn(&str) -> bool| {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .filter(|p| only(&p.file_name().unwrap().to_string_lossy()))
            .collect();
        found.sort();
        files.extend(found);
    };
    add_dir(&util::root().join("testcases"), &|_| true);
    if let Some(shared) = util::shared("the course's and COS418 files on several hosts") {
        add_dir(&shared.join("peer-testcases/spec-examples"), &|n| !n.contains("expected"));
        add_dir(&shared.join("external-tests/cos418-as-cs380d"), &|_| true);
        add_dir(&shared.join("external-tests/cs380d-s20"), &|n| n.starts_with("test"));
    }
    files
}

/// Runs every file on the lab, `workers` at a time, and holds each against the same
/// file and seed on this machine: same stdout, same exit status.
fn same_as_one_machine(lab: &Lab, files: &[PathBuf], seed: u64, workers: usize) {
    let jobs = crossbeam_channel::unbounded();
    for f in files {
        jobs.0.send(f.clone()).unwrap();
    }
    drop(jobs.0);
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..workers {
            let rx = jobs.1.clone();
            handles.push(s.spawn(move || {
                let mut failures = Vec::new();
                while let Ok(file) = rx.recv() {
                    let local = run_file(&file, seed, &[]);
                    let path = file.to_str().unwrap();
                    let remote = lab.run(seed, &[path], None, Duration::from_secs(240));
                    if (local.stdout.as_str(), local.status) != (remote.stdout.as_str(), remote.status) {
                        failures.push(format!(
                            "{}: status {} here, {} on the hosts\n--- here\n{}--- hosts\n{}--- stderr\n{}",
                            file.display(),
                            local.status,
                            remote.status,
                            local.stdout,
                            remote.stdout,
                            remote.stderr
                        ));
                    }
                }
                failures
            }));
        }
        let failures: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        if !failures.is_empty() {
            let logs: Vec<String> = (1..=3)
                .map(|i| {
                    let log = lab.agent_log(i);
                    let bad: Vec<&str> =
                        log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
                    format!("agent {i}:\n{}", bad.join("\n"))
                })
                .collect();
            panic!(
                "{} files differ:\n{}\n{}",
                failures.len(),
                failures.join("\n"),
                logs.join("\n")
            );
        }
    });
}

#[test]
fn every_file_prints_the_same_on_three_hosts() {
    let Some(lab) = Lab::new("every file on three hosts", 3) else { return };
    let files = every_file();
    assert!(files.len() >= 74, "{} files", files.len());
    same_as_one_machine(&lab, &files, 7, 3);
}

/// `HOSTS_ONLY=<text>` keeps the files whose name holds it, and `HOSTS_ROUNDS=<n>` runs
/// them n times (a sweep hunting a rare stall under loss).
fn sweep_files() -> Vec<PathBuf> {
    let only = std::env::var("HOSTS_ONLY").unwrap_or_default();
    let rounds: usize =
        std::env::var("HOSTS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    let files: Vec<PathBuf> = every_file()
        .into_iter()
        .filter(|f| f.file_name().unwrap().to_string_lossy().contains(&only))
        .collect();
    assert!(!files.is_empty(), "no file holds HOSTS_ONLY={only:?}");
    files.iter().cycle().take(files.len() * rounds).cloned().collect()
}

#[test]
fn ten_percent_loss_on_every_link_changes_no_output() {
    let Some(lab) = Lab::new("every file with 10% loss", 3) else { return };
    lab.loss_everywhere(10);
    same_as_one_machine(&lab, &sweep_files(), 7, 6);
}

/// Random fault scripts (`util::faults`: crashes at every point, restarts, pauses,
/// partitions, holds and losses, the three protocols): each prints on three hosts what it
/// prints on one machine. `HOSTS_FAULT_SCRIPTS=n` runs more (24 by default),
/// `HOSTS_FAULT_SCRIPT=n` that one alone (`HOSTS_ROUNDS=r` r times), and `HOSTS_LOSS=p`
/// runs them with p% loss on every link.
#[test]
fn random_fault_scripts_print_the_same_on_three_hosts() {
    let Some(lab) = Lab::new("random fault scripts on three hosts", 3) else { return };
    if let Some(pct) = std::env::var("HOSTS_LOSS").ok().and_then(|p| p.parse().ok()) {
        lab.loss_everywhere(pct);
    }
    let seeds = util::seeds("HOSTS_FAULT_SCRIPT", "HOSTS_FAULT_SCRIPTS", 24);
    let rounds: usize =
        std::env::var("HOSTS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    let dir = util::TempDir::new("hosts-faults");
    let files: Vec<PathBuf> = seeds
        .iter()
        .cycle()
        .take(seeds.len() * rounds)
        .map(|&seed| {
            let f = dir.0.join(format!("fault-{seed}.txt"));
            std::fs::write(&f, util::faults::fault_script(seed, 80).text).unwrap();
            f
        })
        .collect();
    same_as_one_machine(&lab, &files, 7, 3);
}

/// A master reading its commands from a pipe, to act on the run while it goes on.
struct Live {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: crossbeam_channel::Receiver<String>,
    seen: Vec<String>,
    /// stderr's lines (each also copied to the test's stderr).
    errors: crossbeam_channel::Receiver<String>,
}

/// Sends each line `from` gives to a channel, and to stderr too if `echo`.
fn lines_of(
    from: impl std::io::Read + Send + 'static,
    echo: bool,
) -> crossbeam_channel::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("{line}");
            }
            if tx.send(line).is_err() && !echo {
                break;
            }
        }
    });
    rx
}

impl Live {
    fn start(lab: &Lab, seed: u64) -> Live {
        let mut cmd = lab.master_command(seed, &[]);
        cmd.env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("start the master");
        let stdin = child.stdin.take();
        let lines = lines_of(child.stdout.take().unwrap(), false);
        let errors = lines_of(child.stderr.take().unwrap(), true);
        Live { child, stdin, lines, seen: Vec::new(), errors }
    }

    /// Waits for a stderr line starting with `prefix`.
    fn expect_error(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            match self.errors.recv_deadline(deadline) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!("no {prefix:?} on stderr within {limit:?}"),
            }
        }
    }

    fn say(&mut self, text: &str) {
        use std::io::Write;
        let pipe = self.stdin.as_mut().expect("open");
        pipe.write_all(text.as_bytes()).expect("the master reads");
        pipe.flush().unwrap();
    }

    /// Waits for an output line starting with `prefix` (every line is kept).
    fn expect(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            match self.lines.recv_deadline(deadline) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!("no {prefix:?} within {limit:?}; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Closes stdin and waits for the master to end well; every line it printed.
    fn finish(self, limit: Duration) -> Vec<String> {
        let (lines, status) = self.finish_with_status(limit);
        assert_eq!(status, Some(0), "the master's exit status:\n{}", lines.join("\n"));
        lines
    }

    /// Closes stdin and waits for the master to end; every line it printed, and its
    /// exit status.
    fn finish_with_status(mut self, limit: Duration) -> (Vec<String>, Option<i32>) {
        self.stdin = None;
        let deadline = std::time::Instant::now() + limit;
        while let Ok(line) = self.lines.recv_deadline(deadline) {
            self.seen.push(line);
        }
        let status = self.child.wait().unwrap();
        (std::mem::take(&mut self.seen), status.code())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `StartMaster` and six nodes of `balance` each (two per host, round robin).
fn six_nodes(balance: u64) -> String {
    let mut s = String::from("StartMaster\n");
    for i in 1..=6 {
        s.push_str(&format!("CreateNode {i} {balance}\n"));
    }
    s
}

#[test]
fn a_live_load_rides_out_a_host_cut_off_for_five_seconds() {
    let Some(lab) = Lab::new("a live load with a host cut off", 3) else { return };
    let mut m = Live::start(&lab, 5);
    let mut setup = six_nodes(1_000_000);
    setup
        .push_str("Live on\nLoad 80000 mixed seed 3 async\nBeginSnapshot 1\nCollectState\nCheck\n");
    m.say(&setup);
    let first = m.expect("CHECK", Duration::from_secs(60));
    assert_eq!(first, "CHECK OK total=6000000");
    // Host 3 (nodes 3 and 6) vanishes from the network for 5 s, load still running:
    // the fault's duration, not a wait for anything.
    lab.cable("n3", false);
    std::thread::sleep(Duration::from_secs(5));
    lab.cable("n3", true);
    m.say("Check\nWait\nCheck\nStats\n");
    let lines = m.finish(Duration::from_secs(120));
    let checks: Vec<&String> = lines.iter().filter(|l| l.starts_with("CHECK")).collect();
    assert_eq!(checks.len(), 3, "{lines:#?}");
    for c in checks {
        assert_eq!(c, "CHECK OK total=6000000", "{lines:#?}");
    }
    for want in ["undecided 0", "in-doubt 0"] {
        assert!(lines.iter().any(|l| l == want), "{want}: {lines:#?}");
    }
    assert!(lines.iter().any(|l| l.starts_with("LOAD 80000 ")), "{lines:#?}");
    // The cut hit the load: transactions with host 3 timed out (and every one ended).
    let timeouts = lines.iter().find_map(|l| l.strip_prefix("aborts timeout ")).unwrap();
    assert!(timeouts.parse::<u64>().unwrap() > 0, "the load ended before the cut: {lines:#?}");
}

#[test]
fn a_script_reports_a_cut_off_node_unreachable_and_goes_on_once_it_is_back() {
    let Some(lab) = Lab::new("a node cut off under a script", 3) else { return };
    let mut m = Live::start(&lab, 4);
    let script = "StartMaster\nCreateNode 1 100\nCreateNode 2 200\nCreateNode 3 300\n\
                  Send 1 3 10\nCheck\n";
    m.say(script);
    assert_eq!(m.expect("CHECK", Duration::from_secs(60)), "CHECK OK total=600");
    // Host 3 (node 3) leaves the network; line 7 waits on every node.
    lab.cable("n3", false);
    m.say("Balances\n");
    let error = m.expect_error("error: line 7", Duration::from_secs(40));
    assert_eq!(error, "error: line 7: node 3 unreachable");
    lab.cable("n3", true);
    let rest = "Receive 3\nBalances\nCheck\n";
    m.say(rest);
    let (lines, status) = m.finish_with_status(Duration::from_secs(60));
    // Once node 3 is back, every line prints what it prints on one machine.
    let here = util::run_with(
        &["--seed", "4"],
        Some(&format!("{script}Balances\n{rest}")),
        Duration::from_secs(60),
    );
    assert_eq!(here.status, 0);
    assert_same("the run with a cut", &here.stdout, &(lines.join("\n") + "\n"));
    assert_eq!(status, Some(1), "a line failed: the exit status says so");
}

/// What a stranger's connection got back before it was closed, and whether it was.
fn poke(addr: &str, bytes: &[u8]) -> (usize, bool) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let closed = s.read_to_end(&mut got).is_ok();
    (got.len(), closed)
}

#[test]
fn strangers_are_refused_and_the_run_goes_on() {
    use bank::transport::noise::Key;
    let Some(lab) = Lab::new("strangers", 3) else { return };
    let script = "StartMaster\nCreateNode 1 100\nCreateNode 2 200\nCreateNode 3 300\nSend 1 2 10\n";
    let rest =
        "Receive 2\nSend 3 1 30\nBeginSnapshot 1\nReceiveAll\nCollectState\nPrintSnapshot\nCheck\n";
    let mut m = Live::start(&lab, 1);
    m.say(script);
    m.say("Check\n");
    m.expect("CHECK OK", Duration::from_secs(30));
    let agent = format!("{NET}.1:{PORT}");
    // A node's own port, from its agent's log: strangers try the nodes too.
    let log = lab.agent_log(1);
    let node = log
        .lines()
        .find_map(|l| l.split("node 1 listens on ").nth(1))
        .expect("node 1's address in the log")
        .trim()
        .to_string();
    let key = std::fs::read_to_string(&lab.key).unwrap();
    let real = Key::from_hex(&key).unwrap();
    let (a, n) = (agent.clone(), node.clone());
    let results = lab.in_ns("s", move || {
        let mut r = Vec::new();
        // No key at all: an HTTP request, and garbage.
        r.push(("http to the agent", poke(&a, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
        r.push(("garbage to a node", poke(&n, &[0x17; 300])));
        // A wrong key: the handshake fails on both kinds of listener.
        let wrong = Key::generate().unwrap();
        let dial = |addr: &str, them: &str| {
            bank::transport::tcp::dial(addr, &wrong, 0, "master", them).map(|_| ())
        };
        let (agent_dial, node_dial) = (dial(&a, "agent"), dial(&n, "node 1"));
        // A replayed capture: a real master's handshake and first request, relayed and
        // recorded here, then sent again on a new connection.
        let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let via = relay.local_addr().unwrap().to_string();
        let upstream = a.clone();
        let recorder = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut down, _) = relay.accept().unwrap();
            let mut up = std::net::TcpStream::connect(&upstream).unwrap();
            let mut back = up.try_clone().unwrap();
            let mut down2 = down.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut back, &mut down2);
            });
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = down.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                let _ = up.write_all(&buf[..n]);
            }
            let _ = up.shutdown(std::net::Shutdown::Both);
            seen
        });
        {
            let conn = bank::transport::tcp::dial(&via, &real, 0, "master", "agent").unwrap();
            let mut ch = bank::transport::tcp::Channel::new(conn, &[]).unwrap();
            ch.send(&bank::wire::agent::ToAgent::Open { nonce: 99 }).unwrap();
            let got: bank::wire::agent::FromAgent = ch.recv(Some(Duration::from_secs(10))).unwrap();
            assert!(matches!(got, bank::wire::agent::FromAgent::Opened { .. }), "{got:?}");
        }
        let capture = recorder.join().unwrap();
        assert!(capture.len() > 60, "captured {} bytes", capture.len());
        // The agent answers the replayed handshake (50 bytes) and closes at the first
        // record, sealed for another ephemeral key: no answer to the request.
        r.push(("replayed capture", poke(&a, &capture)));
        (r, agent_dial, node_dial)
    });
    let (results, agent_dial, node_dial) = results;
    assert!(agent_dial.is_err(), "a wrong key was let into the agent");
    assert!(node_dial.is_err(), "a wrong key was let into a node");
    for (what, (got, closed)) in &results {
        match *what {
            "replayed capture" => assert_eq!((*got, *closed), (50, true), "{what}"),
            _ => assert_eq!((*got, *closed), (0, true), "{what}"),
        }
    }
    m.say(rest);
    let lines = m.finish(Duration::from_secs(60));
    let here = util::run_with(
        &["--seed", "1"],
        Some(&format!("{script}Check\n{rest}")),
        Duration::from_secs(60),
    );
    assert_same("the run with strangers", &here.stdout, &(lines.join("\n") + "\n"));
    let log = lab.agent_log(1);
    let refusals = log.matches(&format!("refused a connection from {NET}.{STRANGER}")).count();
    assert!(refusals >= 3, "agent 1 logged {refusals} refusals:\n{log}");
}

#[test]
fn remote_faults_and_a_killed_master_leave_no_node_behind() {
    let Some(lab) = Lab::new("remote faults and a killed master", 3) else { return };
    let mut m = Live::start(&lab, 2);
    let mut s = six_nodes(100);
    s.push_str("Send 1 2 10\nCrash 2\nRestart 2\nPause 3\nResume 3\nReceiveAll\nCheck\n");
    m.say(&s);
    assert_eq!(m.expect("CHECK", Duration::from_secs(60)), "CHECK OK total=600");
    let nodes: Vec<u32> = (1..=3).flat_map(|i| lab.nodes_on(i)).collect();
    assert_eq!(nodes.len(), 6, "two nodes per host: {nodes:?}");
    let _ = m.child.kill(); // SIGKILL
    let _ = m.child.wait();
    for pid in nodes {
        assert!(
            netlab::wait_exit(pid, Duration::from_secs(10)),
            "node process {pid} outlived the master"
        );
    }
    for i in 1..=3 {
        assert!(lab.nodes_on(i).is_empty(), "host {i} still has {:?}", lab.nodes_on(i));
        assert!(!netlab::wait_exit(lab.agent_pid(i), Duration::ZERO), "agent {i} is up");
    }
    // The agents take the next run.
    let arg = util::root().join("testcases/arg.txt");
    let run = lab.run(1, &[arg.to_str().unwrap()], None, Duration::from_secs(60));
    let want = std::fs::read_to_string(util::root().join("testcases/arg.expected")).unwrap();
    assert_same("arg.txt after a killed master", &want, &run.stdout);
}

#[test]
fn agents_started_over_ssh_run_the_same_and_leave_nothing() {
    let Some(lab) = Lab::with_ssh("agents started over ssh", 3, &[1, 2]) else { return };
    // One run at a time: each starts its own agent on each ssh host's port.
    same_as_one_machine(&lab, &every_file(), 7, 1);
    for i in [1, 2] {
        assert_eq!(lab.bank_processes_in(i), Vec::<u32>::new(), "left on host {i} after the runs");
    }
    // A master killed mid-run takes its ssh sessions, the agents and their nodes along.
    let mut m = Live::start(&lab, 3);
    m.say(
        "StartMaster\nCreateNode 1 10\nCreateNode 2 20\nCreateNode 3 30\nCreateNode 4 40\nCheck\n",
    );
    assert_eq!(m.expect("CHECK", Duration::from_secs(60)), "CHECK OK total=100");
    let running: Vec<u32> = [1, 2].iter().flat_map(|&i| lab.bank_processes_in(i)).collect();
    assert_eq!(running.len(), 2 + 3, "an agent on each ssh host, nodes 1, 2, 4 there: {running:?}");
    let _ = m.child.kill();
    let _ = m.child.wait();
    for pid in running {
        assert!(netlab::wait_exit(pid, Duration::from_secs(10)), "{pid} outlived the master");
    }
}
