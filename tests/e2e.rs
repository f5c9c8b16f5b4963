//! End to end: the real binary on command files, stdout compared byte for byte, traces
//! replayed through the snapshot checker, processes and sockets checked after a SIGKILL.
//!
//! `BLESS=1 cargo test --test e2e` rewrites `testcases/*.expected` (and `.stderr`).

mod util;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use util::check::{parse_blocks, Checker};
use util::{assert_same, run_file, run_with, shared, TempDir};

/// Replays a trace and checks every printed snapshot against it.
fn check_trace(what: &str, trace: &Path, stdout: &str) -> Checker {
    util::check_trace(trace, stdout, true).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn testcase_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(util::root().join("testcases"))
        .expect("testcases/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the testcases are there");
    files
}

// Every testcases/NAME.txt prints NAME.expected (and NAME.stderr), and its trace checks out;
// without --trace too, where fault-free Transfers run node to node instead of step by step.
#[test]
fn testcases_print_their_expected_output() {
    let bless = std::env::var_os("BLESS").is_some();
    let tmp = TempDir::new("cases");
    for file in testcase_files() {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let trace = tmp.0.join(format!("{name}.trace"));
        // A file whose output depends on the random choices names its seed; any other
        // prints the same whatever the seed.
        let text = String::from_utf8_lossy(&fs::read(&file).unwrap()).into_owned();
        let named = text.lines().find_map(|l| l.strip_prefix("# seed: ")?.trim().parse().ok());
        let seed = named.unwrap_or(1);
        if named.is_none() && !bless {
            let want = fs::read_to_string(file.with_extension("expected")).unwrap_or_default();
            let other = run_file(&file, 987_654_321, &[]);
            assert_same(
                &format!("{name} with another seed (no '# seed:' line)"),
                &want,
                &other.stdout,
            );
        }
        let run = run_file(&file, seed, &["--trace", trace.to_str().unwrap()]);
        let expected = file.with_extension("expected");
        let stderr_file = file.with_extension("stderr");
        if bless {
            fs::write(&expected, &run.stdout).unwrap();
            if run.stderr.is_empty() {
                let _ = fs::remove_file(&stderr_file);
            } else {
                fs::write(&stderr_file, &run.stderr).unwrap();
            }
            continue;
        }
        let want = fs::read_to_string(&expected).unwrap_or_else(|_| panic!("{name}.expected"));
        assert_same(&name, &want, &run.stdout);
        let want_err = fs::read_to_string(&stderr_file).unwrap_or_default();
        assert_same(&format!("{name} (stderr)"), &want_err, &run.stderr);
        // Status 1 for a rejected line, or for a Check that failed (a 3PC split).
        let failed = !want_err.is_empty() || want.lines().any(|l| l.starts_with("CHECK FAILED"));
        assert_eq!(run.status, i32::from(failed), "{name}: exit status");
        check_trace(&name, &trace, &run.stdout);
        let untraced = run_file(&file, seed, &[]);
        assert_same(&format!("{name} (no trace)"), &want, &untraced.stdout);
        assert_same(&format!("{name} (no trace, stderr)"), &want_err, &untraced.stderr);
    }
}

// arg.txt, the newcomer's example, prints the same whatever the seed.
#[test]
fn arg_txt_does_not_depend_on_the_seed() {
    let file = util::root().join("testcases/arg.txt");
    let want = fs::read_to_string(util::root().join("testcases/arg.expected")).unwrap();
    for seed in [2, 3, 99, u64::MAX] {
        assert_same(&format!("arg.txt --seed {seed}"), &want, &run_file(&file, seed, &[]).stdout);
    }
}

// The course's three examples, byte for byte, with both arrows.
#[test]
fn spec_examples_are_byte_identical() {
    let Some(dir) = shared("spec examples") else { return };
    let dir = dir.join("peer-testcases/spec-examples");
    for i in 1..=3 {
        let file = dir.join(format!("example{i}.txt"));
        let ascii = fs::read_to_string(dir.join(format!("example{i}.expected.txt"))).unwrap();
        let uni = fs::read_to_string(dir.join(format!("example{i}.expected.u2192.txt"))).unwrap();
        assert_same(&format!("example{i}"), &ascii, &run_file(&file, 1, &[]).stdout);
        let run = run_file(&file, 1, &["--arrow", "unicode"]);
        assert_same(&format!("example{i} --arrow unicode"), &uni, &run.stdout);
    }
}

// The seven COS418 tests rewritten as command files, the concurrent ones included.
#[test]
fn cos418_files_are_byte_identical() {
    let Some(dir) = shared("COS418-derived files") else { return };
    let dir = dir.join("external-tests/cos418-as-cs380d");
    let tmp = TempDir::new("cos418");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let want = fs::read_to_string(file.with_extension("expected")).unwrap();
        for seed in [1, 7] {
            let trace = tmp.0.join(format!("{name}-{seed}.trace"));
            let run = run_file(&file, seed, &["--trace", trace.to_str().unwrap()]);
            assert_same(&name, &want, &run.stdout);
            check_trace(&name, &trace, &run.stdout);
        }
        n += 1;
    }
    assert_eq!(n, 7);
}

// The course's test1-test5 under 20 seeds: every snapshot checks out against the trace,
// the facts that hold in every legal run hold, and the same seed gives the same stdout.
#[test]
fn course_tests_hold_the_snapshot_properties_under_many_seeds() {
    let Some(dir) = shared("CS380D test1-test5") else { return };
    let dir = dir.join("external-tests/cs380d-s20");
    let tmp = TempDir::new("course");
    for t in 1..=5 {
        let file = dir.join(format!("test{t}.txt"));
        let mut outputs = BTreeSet::new();
        for seed in 0..20u64 {
            let what = format!("test{t} --seed {seed}");
            let trace = tmp.0.join(format!("t{t}-{seed}.trace"));
            let run = run_file(&file, seed, &["--trace", trace.to_str().unwrap()]);
            assert_eq!(run.status, 0, "{what}: {}", run.stderr);
            let c = check_trace(&what, &trace, &run.stdout);
            let lines: Vec<&str> = run.stdout.lines().collect();
            assert!(
                ["1 Transfer 50", "2 Transfer 100", "4 Transfer 200"].contains(&lines[0]),
                "{what}"
            );
            assert!(lines.contains(&"ERR_SEND") && lines.contains(&"Started by Node 2"), "{what}");
            let first = &parse_blocks(&run.stdout)[0];
            assert!(first.nodes.contains(&(2, 1000)), "{what}: node 2 = 1000");
            for ch in [(1, 2, 200), (3, 2, 400), (4, 2, 100)] {
                assert!(first.channels.contains(&ch), "{what}: {ch:?}");
            }
            assert_eq!(c.total(), 5500);
            if t == 5 {
                let second = &parse_blocks(&run.stdout)[1];
                assert_eq!(second.nodes, vec![(1, 1600), (2, 1200), (3, 100), (4, 2600)], "{what}");
                assert!(second.channels.iter().all(|c| c.2 == 0), "{what}");
            }
            let again = run_file(&file, seed, &[]);
            assert_same(&format!("{what}, second run"), &run.stdout, &again.stdout);
            outputs.insert(run.stdout);
        }
        assert!(outputs.len() > 1, "test{t}: different seeds make different random choices");
    }
}

// Chapter 3: a rejected line prints one error naming it, the run goes on, exit status 1.
#[test]
fn rejected_lines_do_not_stop_the_run() {
    let run = run_with(&["--seed", "1"], Some("Receive 1\nStartMaster\nCreateNode 1 5\nSend 1 2 3\nCreateNode 2 0\nSend 1 2 3\nReceive 2 1\nKillAll\n"), Duration::from_secs(30));
    assert_eq!(run.stdout, "1 Transfer 3\n");
    assert_eq!(
        run.stderr,
        "error: line 1: Receive 1: no system is running (StartMaster starts one)\n\
         error: line 4: Send 1 2 3: unknown node 2\n"
    );
    assert_eq!(run.status, 1);
}

// Chapter 1: bad options and unreadable files cannot start (2); '-' reads stdin.
#[test]
fn exit_statuses_and_standard_input() {
    let missing = run_with(&["/no/such/file.txt"], None, Duration::from_secs(10));
    assert_eq!(missing.status, 2);
    assert!(missing.stderr.contains("cannot read /no/such/file.txt"), "{}", missing.stderr);
    assert_eq!(run_with(&["--no-such-option"], None, Duration::from_secs(10)).status, 2);
    let run = run_with(
        &["-"],
        Some("StartMaster\nCreateNode 1 9\nCreateNode 2 1\nSend 2 1 5\n"),
        Duration::from_secs(30),
    );
    assert_eq!((run.stdout.as_str(), run.status), ("ERR_SEND\n", 0));
}

// 256 node processes: a full mesh, one snapshot, every marker delivered, and it balances.
#[test]
fn two_hundred_fifty_six_nodes() {
    let tmp = TempDir::new("n256");
    let file = tmp.0.join("n256.txt");
    let mut text = String::from("StartMaster\n");
    for i in 1..=256 {
        text.push_str(&format!("CreateNode {i} {}\n", i * 10));
    }
    text.push_str("Send 256 1 2560\nSend 1 256 10\nBeginSnapshot 128\nReceiveAll\nCollectState\nPrintSnapshot\nKillAll\n");
    fs::write(&file, text).unwrap();
    let run = run_with(&["--seed", "5", file.to_str().unwrap()], None, Duration::from_secs(120));
    assert_eq!(run.status, 0, "{}", run.stderr);
    let blocks = parse_blocks(&run.stdout);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].nodes.len(), 256);
    assert_eq!(blocks[0].channels.len(), 256 * 255);
    let held: u64 = blocks[0].nodes.iter().map(|n| n.1).sum::<u64>()
        + blocks[0].channels.iter().map(|c| c.2).sum::<u64>();
    assert_eq!(held, (1..=256u64).map(|i| i * 10).sum::<u64>());
}

/// A master reading commands from a pipe, with its stdin and buffered stdout.
fn piped_master(
    args: &[&str],
    stderr: Stdio,
) -> (std::process::Child, std::process::ChildStdin, BufReader<std::process::ChildStdout>) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(util::bin());
    cmd.env("RUST_LOG", "warn").args(args).stdin(Stdio::piped()).stdout(Stdio::piped());
    // A harness started in the background (`cargo test &` in a script) passes SIGINT on
    // ignored, and so would the master; these tests send it, so it gets its default back.
    // SAFETY: between fork and exec only sigaction, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            use nix::sys::signal::{signal, SigHandler, Signal};
            for sig in [Signal::SIGINT, Signal::SIGTERM] {
                signal(sig, SigHandler::SigDfl).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    let mut master = cmd.stderr(stderr).spawn().unwrap();
    let stdin = master.stdin.take().unwrap();
    let stdout = BufReader::new(master.stdout.take().unwrap());
    (master, stdin, stdout)
}

/// Sends `commands` and reads one stdout line per entry of `want`, which must match:
/// once a command's output is printed, every process it involved has run it.
fn expect_lines(
    stdin: &mut std::process::ChildStdin,
    out: &mut BufReader<std::process::ChildStdout>,
    commands: &str,
    want: &[&str],
) {
    stdin.write_all(commands.as_bytes()).unwrap();
    stdin.flush().unwrap();
    for w in want {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), *w);
    }
}

/// Live (not zombie) processes: (pid, parent pid, command line).
fn live_processes() -> Vec<(i32, i32, String)> {
    let mut procs = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = fs::read(entry.path().join("cmdline")) else { continue };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse().ok()));
        if let (Some(state), Some(ppid)) = (state, ppid) {
            if state != "Z" && state != "X" {
                procs.push((pid, ppid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
            }
        }
    }
    procs
}

/// Live processes that are children of `parent` or carry `needle` in their command line.
fn live_processes_of(parent: u32, needle: &str) -> Vec<i32> {
    let procs = live_processes();
    procs
        .into_iter()
        .filter(|p| p.1 == parent as i32 || p.2.contains(needle))
        .map(|p| p.0)
        .collect()
}

/// Abstract socket names in use that start with `prefix`.
fn sockets_with(prefix: &str) -> usize {
    let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table.lines().filter(|l| l.contains(&format!("@{prefix}"))).count()
}

/// Waits until every pid in `pids` has exited (or `limit` passes): a pidfd becomes
/// readable when its process ends, so this blocks in poll(2) instead of sleeping.
fn wait_all_exit(pids: &[i32], limit: Duration) -> bool {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    let fds: Vec<OwnedFd> = pids
        .iter()
        .filter_map(|&p| {
            // SAFETY: pidfd_open returns a new fd or -1.
            let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, p, 0) };
            (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
        })
        .collect();
    let deadline = std::time::Instant::now() + limit;
    let mut left: Vec<&OwnedFd> = fds.iter().collect();
    while !left.is_empty() {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        if remaining.is_zero() {
            return false;
        }
        let mut pfds: Vec<nix::poll::PollFd> = left
            .iter()
            .map(|fd| nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN))
            .collect();
        let ms = nix::poll::PollTimeout::try_from(remaining).unwrap_or(nix::poll::PollTimeout::MAX);
        let _ = nix::poll::poll(&mut pfds, ms);
        let done: Vec<bool> =
            pfds.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(pfds);
        left = left.into_iter().zip(done).filter(|(_, d)| !d).map(|(f, _)| f).collect();
    }
    true
}

// Chapter 1: a SIGKILLed master leaves no process and no socket of its run, within 1 s.
#[test]
fn a_killed_master_leaves_nothing_behind() {
    let (mut master, mut stdin, mut out) = piped_master(&[], Stdio::null());
    let mut commands = String::from("StartMaster\n");
    for i in 1..=6 {
        commands.push_str(&format!("CreateNode {i} 100\n"));
    }
    commands.push_str("Send 1 2 5\nReceive 2 1\nBeginSnapshot 3\n");
    expect_lines(&mut stdin, &mut out, &commands, &["1 Transfer 5", "Started by Node 3"]);
    let prefix = format!("bank-{}-", master.id());
    let children = live_processes_of(master.id(), &prefix);
    assert_eq!(children.len(), 7, "the observer and six nodes run");
    assert!(sockets_with(&prefix) > 0, "their sockets exist");
    master.kill().unwrap();
    master.wait().unwrap();
    assert!(
        wait_all_exit(&children, Duration::from_secs(1)),
        "children outlived the master by 1 s"
    );
    assert_eq!(live_processes_of(master.id(), &prefix), Vec::<i32>::new());
    assert_eq!(sockets_with(&prefix), 0, "no socket of the run remains");
    drop(stdin);
}

// A normal end (KillAll, end of input) also leaves nothing.
#[test]
fn a_finished_run_leaves_nothing_behind() {
    let mut master = Command::new(util::bin())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = master.id();
    master
        .stdin
        .take()
        .unwrap()
        .write_all(b"StartMaster\nCreateNode 1 1\nCreateNode 2 2\n")
        .unwrap();
    assert!(master.wait().unwrap().success());
    let prefix = format!("bank-{pid}-");
    assert_eq!(live_processes_of(pid, &prefix), Vec::<i32>::new());
    assert_eq!(sockets_with(&prefix), 0);
}

/// The abstract socket names (without '@') in use that start with `prefix`.
fn socket_names(prefix: &str) -> Vec<String> {
    let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let mut names: Vec<String> = table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter_map(|n| n.strip_prefix('@'))
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Connects to an abstract socket, writes `bytes`, and waits (at most 10 s) for the
/// other side to close the connection.
fn send_and_expect_close(name: &str, bytes: &[u8]) {
    use std::io::Read;
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
    let mut s = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    s.write_all(bytes).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "the node closes a link it does not trust");
}

// Transport: a connection from another run, or one that sends garbage, is refused and
// logged, and the run goes on unharmed.
#[test]
fn strangers_and_garbage_are_refused() {
    use bank::wire::{encode_frame, Hello, Message, Peer};
    let mut master = Command::new(util::bin())
        .env("RUST_LOG", "warn")
        .args(["--seed", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = master.stdin.take().unwrap();
    writeln!(stdin, "StartMaster\nCreateNode 1 10\nCreateNode 2 0\nSend 1 2 5\nReceive 2 1")
        .unwrap();
    stdin.flush().unwrap();
    let mut out = BufReader::new(master.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "1 Transfer 5\n");
    let prefix = format!("bank-{}-", master.id());
    let node1 =
        socket_names(&prefix).into_iter().find(|n| n.ends_with(".n1")).expect("node 1 listens");
    let mut hello = Vec::new();
    encode_frame(
        &Message::Hello(Hello { nonce: 12345, from: Peer::Node(bank::ids::NodeId(2)) }),
        &mut hello,
    );
    send_and_expect_close(&node1, &hello);
    send_and_expect_close(&node1, &[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
    send_and_expect_close(&node1, &[3, 0, 0, 0, 0xee, 0xee, 0xee]);
    writeln!(stdin, "Send 1 2 5\nReceive 2 1\nBeginSnapshot 2\nReceiveAll\nCollectState\nPrintSnapshot\nKillAll").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut master.stderr.take().unwrap(), &mut err).unwrap();
    assert!(master.wait().unwrap().success(), "{err}");
    assert!(rest.starts_with("1 Transfer 5\nStarted by Node 2\n"), "{rest}");
    assert!(rest.contains("node 1 = 0\nnode 2 = 10\n"), "{rest}");
    assert!(err.contains("refused a connection from another run"), "{err}");
    assert_eq!(err.matches("sent a bad frame").count(), 2, "{err}");
}

// Chapter 1: Ctrl-C (SIGINT to the master) and SIGTERM leave nothing behind either.
#[test]
fn interrupted_masters_leave_nothing_behind() {
    for sig in [nix::sys::signal::Signal::SIGINT, nix::sys::signal::Signal::SIGTERM] {
        let (mut master, mut stdin, mut out) = piped_master(&[], Stdio::null());
        let commands = "StartMaster\nCreateNode 1 3\nCreateNode 2 3\nBeginSnapshot 2\n";
        expect_lines(&mut stdin, &mut out, commands, &["Started by Node 2"]);
        let prefix = format!("bank-{}-", master.id());
        let children = live_processes_of(master.id(), &prefix);
        assert_eq!(children.len(), 3);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(master.id() as i32), sig).unwrap();
        let ended = wait_all_exit(&[master.id() as i32], Duration::from_secs(10));
        if !ended {
            let _ = master.kill();
        }
        let _ = master.wait();
        assert!(ended, "{sig}: the master outlived the signal");
        assert!(
            wait_all_exit(&children, Duration::from_secs(1)),
            "{sig}: children outlived the master"
        );
        assert_eq!(sockets_with(&prefix), 0, "{sig}: no socket of the run remains");
        drop(stdin);
    }
}

/// A random script over four nodes: Sends, Receives, Transfers (some `via` a third node,
/// some `nowait`, many on accounts busy with an unfinished one), snapshots, `Balances`,
/// `TxStatus` and `Check`; with `faults`, crashes and restarts among them.
fn random_transfer_script(seed: u64, faults: bool) -> String {
    let mut rng = bank::rng::Rng::new(seed);
    let mut s = String::from("StartMaster\n");
    for n in 1..=4 {
        s.push_str(&format!("CreateNode {n} {}\n", 20 * rng.below(10)));
    }
    let mut txs = 0;
    for _ in 0..60 {
        let a = 1 + rng.below(4);
        let b = 1 + (a + rng.below(3)) % 4; // another node
        let c = 1 + rng.below(4);
        if faults && rng.below(6) == 0 {
            // A crash now, or at a point of one of the next two transfers (if they reach
            // it; a restart kills the node first if not).
            let point = CRASH_POINTS[rng.below(CRASH_POINTS.len())];
            let amount = 1 + rng.below(40);
            let (lines, transfers) = match rng.below(3) {
                0 => (format!("Crash {a}\nRestart {a}\n"), 0),
                1 => (format!("Crash {a}\nTransfer {a} {b} {amount}\nRestart {a}\n"), 1),
                _ => (
                    format!(
                        "CrashAt {a} {point}\nTransfer {a} {b} {amount}\n\
                         Transfer {b} {a} {amount}\nRestart {a}\n"
                    ),
                    2,
                ),
            };
            s.push_str(&lines);
            txs += transfers;
            continue;
        }
        let line = match rng.below(12) {
            0..=1 => format!("Send {a} {b} {}", rng.below(60)),
            2..=3 => format!("Receive {a}"),
            4..=7 => {
                txs += 1;
                let via = if rng.below(4) == 0 { format!(" via {c}") } else { String::new() };
                let nowait = if rng.below(5) == 0 { " nowait" } else { "" };
                format!("Transfer {a} {b} {}{via}{nowait}", 1 + rng.below(80))
            }
            8 => format!("BeginSnapshot {a}"),
            9 => "ReceiveAll\nCollectState\nPrintSnapshot".to_string(),
            10 if txs > 0 => format!("TxStatus T{}", 1 + rng.below(txs)),
            10 => "Balances".to_string(),
            _ => "Check".to_string(),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str("ReceiveAll\nBalances\nCheck\nStats\n");
    s
}

// Without --trace, a fault-free Transfer between two nodes whose channels are empty runs
// node to node (the nodes deliver its messages as they arrive); with --trace the master
// delivers each message. Both must print the same, byte for byte, on random scripts where
// transfers meet busy accounts, pending nowait transfers, Sends and snapshots.
#[test]
fn driven_transfers_print_what_stepwise_delivery_prints() {
    let seeds = util::seeds("DRIVEN_SEED", "DRIVEN_SEEDS", 40);
    let committed = random_transfer_scripts_check_out(&seeds, false);
    assert!(committed >= seeds.len(), "the scripts commit transfers ({committed})");
}

// The same with crashes among the commands: `Crash` and `Restart`, a `Transfer` with a
// node that is down, and `CrashAt` at each point of chapter 5 before two transfers. Every
// trace checks out against the printed snapshots, every `Check` is OK, and the run without
// --trace prints the same (a fault turns driven transfers off for the rest of a run).
#[test]
fn random_fault_scripts_check_out() {
    let seeds = util::seeds("FAULT_SEED", "FAULT_SEEDS", 30);
    let committed = random_transfer_scripts_check_out(&seeds, true);
    assert!(committed >= seeds.len(), "the scripts commit transfers ({committed})");
}

const CRASH_POINTS: [&str; 6] =
    ["before-vote", "after-vote", "before-decision", "after-decision", "mid-commit", "before-ack"];

/// Runs `random_transfer_script(seed, faults)` for each seed with --trace (stepwise) and
/// without (driven where allowed): the trace checks out, both print the same, every
/// `Check` is OK. Returns how many transfers committed.
fn random_transfer_scripts_check_out(seeds: &[u64], faults: bool) -> usize {
    let tmp = TempDir::new(if faults { "faults" } else { "driven" });
    let mut committed = 0;
    for &seed in seeds {
        let file = tmp.0.join(format!("random-{seed}.txt"));
        let script = random_transfer_script(seed, faults);
        fs::write(&file, &script).unwrap();
        let trace = tmp.0.join(format!("random-{seed}.trace"));
        let stepwise = run_file(&file, seed, &["--trace", trace.to_str().unwrap()]);
        check_trace(&format!("random script {seed}"), &trace, &stepwise.stdout);
        let driven = run_file(&file, seed, &[]);
        let what = format!("random script {seed}, run with --seed {seed}:\n{script}\n");
        assert_same(&what, &stepwise.stdout, &driven.stdout);
        assert_same(&format!("{what} stderr"), &stepwise.stderr, &driven.stderr);
        let checks: Vec<&str> = driven.stdout.lines().filter(|l| l.starts_with("CHECK")).collect();
        assert!(!checks.is_empty() && checks.iter().all(|l| l.starts_with("CHECK OK")), "{what}");
        committed += driven.stdout.matches(" COMMITTED\n").count();
    }
    committed
}

// Two nodes each sending the other far more than a socket holds, with nobody receiving:
// every message arrives once and the snapshot after it balances. (Whether both nodes
// ever block writing at the same moment is up to timing; what keeps that from
// deadlocking is transport::flush_reading reading while it waits, not this test.)
#[test]
fn nodes_flooding_each_other_do_not_deadlock() {
    let tmp = TempDir::new("flood");
    let file = tmp.0.join("flood.txt");
    let n = 60_000; // ~600 KB each way; a socket holds ~200 KB
    let mut text = String::from("StartMaster\nCreateNode 1 1000000\nCreateNode 2 1000000\n");
    for _ in 0..n {
        text.push_str("Send 1 2 1\nSend 2 1 1\n");
    }
    text.push_str("BeginSnapshot 1\nReceiveAll\nCollectState\nPrintSnapshot\n");
    fs::write(&file, text).unwrap();
    let run = run_file(&file, 1, &[]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let want = format!(
        "Started by Node 1\n---Node states\nnode 1 = {}\nnode 2 = 1000000\n---Channel states\n\
         channel (1 -> 2) = 0\nchannel (2 -> 1) = {n}\n",
        1_000_000 - n
    );
    assert_same("flood", &want, &run.stdout);
}

// The in-process model (bank::replay: parser, ledger and machines, no processes) prints
// what the processes print, on every testcase it can run whole and the course files.
#[test]
fn the_in_process_replay_prints_what_the_processes_print() {
    let mut files: Vec<(PathBuf, PathBuf)> =
        testcase_files().into_iter().map(|f| (f.clone(), f.with_extension("expected"))).collect();
    if let Some(dir) = shared("COS418-derived files, replayed") {
        let dir = dir.join("external-tests/cos418-as-cs380d");
        for e in fs::read_dir(&dir).unwrap() {
            let f = e.unwrap().path();
            if f.extension().is_some_and(|e| e == "txt") {
                files.push((f.clone(), f.with_extension("expected")));
            }
        }
    }
    let mut compared = 0;
    for (file, expected) in files {
        let text = String::from_utf8_lossy(&fs::read(&file).unwrap()).into_owned();
        let seed = text.lines().find_map(|l| l.strip_prefix("# seed: ")?.trim().parse().ok());
        let out = bank::replay::run(&text, seed.unwrap_or(1))
            .unwrap_or_else(|v| panic!("{}: {v}", file.display()));
        if out.skipped > 0 {
            continue; // transfers or faults: not modelled
        }
        let got: String = out.stdout.iter().map(|l| format!("{l}\n")).collect();
        let want = fs::read_to_string(&expected).unwrap();
        assert_same(&format!("{} (replayed)", file.display()), &want, &got);
        compared += 1;
    }
    assert!(compared >= 8, "{compared} files compared");
}

// The README's side-by-side example prints what the README shows, and exits 1: its
// last Check finds 3PC's split.
#[test]
fn the_commit_protocols_example_prints_its_expected_output() {
    let file = util::root().join("examples/commit-protocols.txt");
    let want = fs::read_to_string(util::root().join("examples/commit-protocols.expected")).unwrap();
    for seed in [1, 2] {
        let run = run_file(&file, seed, &[]);
        assert_same(&format!("commit-protocols --seed {seed}"), &want, &run.stdout);
        assert_eq!(run.status, 1, "the 3PC split fails a Check");
        assert!(run.stderr.is_empty(), "nothing rejected: {}", run.stderr);
    }
}

// Every example a class runs: one with an `.expected` file prints it byte for byte under
// two seeds (exit status 0, nothing on stderr, unless it is commit-protocols, above);
// one without (its counts depend on timing) runs clean, no Check in it fails and one
// says OK.
#[test]
fn every_example_prints_its_expected_output_or_checks_ok() {
    let dir = util::root().join("examples");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .filter(|p| !p.ends_with("commit-protocols.txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "examples: {files:?}");
    for file in &files {
        let expected = file.with_extension("expected");
        let seeds: &[u64] = if expected.exists() { &[1, 2] } else { &[1] };
        for &seed in seeds {
            let run = run_file(file, seed, &[]);
            let what = format!("{} --seed {seed}", file.display());
            assert_eq!(run.status, 0, "{what}: status; stderr: {}", run.stderr);
            assert!(run.stderr.is_empty(), "{what}: stderr: {}", run.stderr);
            if expected.exists() {
                let want = fs::read_to_string(&expected).expect("read the expected output");
                assert_same(&what, &want, &run.stdout);
            } else {
                let checks: Vec<&str> =
                    run.stdout.lines().filter(|l| l.starts_with("CHECK")).collect();
                // UNAVAILABLE (a node down) is a verdict withheld, never a wrong one.
                assert!(checks.iter().any(|l| l.starts_with("CHECK OK")), "{what}: {checks:?}");
                assert!(
                    !checks.iter().any(|l| l.starts_with("CHECK FAILED")),
                    "{what}: {checks:?}"
                );
            }
        }
    }
}

// `bank-master log` (SPEC chapter 11): every record of a run kept with --data-dir, in
// words; a log cut in the middle of its last record reads to where the tear begins
// (exit 0); a flipped bit in an early record stops the dump there with exit status 1
// and the byte offset; a directory with no log, or no such path, cannot start (2).
#[test]
fn log_prints_a_nodes_records_and_names_a_tear_or_damage_by_offset() {
    let tmp = TempDir::new("log");
    let dir = tmp.0.join("data");
    fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let file = util::root().join("examples/accounts.txt");
    let run = run_with(&["--data-dir", d, file.to_str().unwrap()], None, Duration::from_secs(60));
    assert_eq!(run.status, 0, "{run:?}");
    let log =
        |path: &Path| run_with(&["log", path.to_str().unwrap()], None, Duration::from_secs(30));
    let all = log(&dir);
    assert_eq!(all.status, 0, "{all:?}");
    let node2: Vec<&str> =
        all.stdout.lines().skip_while(|l| !l.ends_with("node-2.wal")).skip(1).collect();
    assert_eq!(node2[0], "#1 forced opened node account balance=0");
    assert_eq!(node2[1], "#2 forced opened account ACC003 balance=750");
    assert!(
        node2.contains(&"#8 forced prepared T3 ACC004:-50 ACC003:+20 held=50 (2pc)"),
        "{node2:?}"
    );
    // Torn: the file cut two bytes into its last record's payload.
    let path = dir.join("node-2.wal");
    let bytes = fs::read(&path).unwrap();
    let end: usize = node2
        .iter()
        .find_map(|l| l.strip_prefix("end at byte "))
        .and_then(|n| n.parse().ok())
        .expect("an end line");
    let torn = tmp.0.join("node-2.wal");
    fs::write(&torn, &bytes[..end - 2]).unwrap();
    let cut = log(&torn);
    assert_eq!(cut.status, 0, "{cut:?}");
    let last = cut.stdout.lines().last().unwrap();
    assert!(last.starts_with("torn tail at byte "), "{last}");
    assert!(cut.stdout.lines().any(|l| l.starts_with("#8 ")), "{}", cut.stdout);
    assert!(!cut.stdout.lines().any(|l| l.starts_with("#9 ")), "{}", cut.stdout);
    // Damaged: one bit of record #2's payload flipped (record #1, the 2-byte Opened of
    // balance 0, takes bytes 0..10).
    let mut flipped = bytes.clone();
    flipped[20] ^= 0x04;
    let bad = tmp.0.join("node-9.wal");
    fs::write(&bad, &flipped).unwrap();
    let damaged = log(&bad);
    assert_eq!(damaged.status, 1, "{damaged:?}");
    assert!(damaged.stderr.contains("the record at byte 10 is damaged"), "{}", damaged.stderr);
    let lines: Vec<&str> = damaged.stdout.lines().collect();
    assert_eq!(lines[0], "#1 forced opened node account balance=0");
    assert!(lines[1].starts_with("damaged record at byte 10: checksum"), "{lines:?}");
    // Nothing to read.
    let empty = tmp.0.join("empty");
    fs::create_dir(&empty).unwrap();
    let none = log(&empty);
    assert_eq!(none.status, 2, "{none:?}");
    assert!(none.stderr.contains("holds no node log"), "{}", none.stderr);
    assert_eq!(log(&tmp.0.join("missing")).status, 2);
}
