//! Helpers shared by the integration tests: running the real binary under a watchdog,
//! finding `../shared`, and the snapshot checker (`check`).

#![allow(dead_code)]

pub mod check;
pub mod faults;
pub mod netlab;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The seeds of a randomized test: the one in `$one` when it is set (to replay a failure),
/// else `0..$many`, `default` of them when that is not set.
pub fn seeds(one: &str, many: &str, default: u64) -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse().ok());
    match var(one) {
        Some(seed) => vec![seed],
        None => (0..var(many).unwrap_or(default)).collect(),
    }
}

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bank-master"))
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared`, or `None` after printing a visible skip message naming `what`.
/// The message goes straight to the stderr handle: the test harness captures only the
/// `print!` family, so this line shows even when the test passes. Under `CI=true` a
/// missing `../shared` fails the test instead: CI must run everything.
pub fn shared(what: &str) -> Option<PathBuf> {
    let dir = root().join("../shared");
    if dir.is_dir() {
        Some(dir)
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}: ../shared is not beside the repository, and CI=true must run it");
    } else {
        use std::io::Write;
        let msg = format!("SKIPPED {what}: ../shared is not beside the repository\n");
        let _ = std::io::stderr().write_all(msg.as_bytes());
        None
    }
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
}

/// Runs the binary with `args` (and `stdin`, if any) under a watchdog: a run that takes
/// longer than `limit` is killed and the test fails.
pub fn run_with(args: &[&str], stdin: Option<&str>, limit: Duration) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    run_command(cmd, stdin, limit)
}

/// Runs `cmd` (the binary, or the binary inside `ip netns exec`) as [`run_with`] does.
pub fn run_command(mut cmd: Command, stdin: Option<&str>, limit: Duration) -> Run {
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    cmd.env_remove("RUST_LOG")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start bank-master");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("piped");
        // A run that ends without reading its input (it cannot start: exit status 2)
        // closes the pipe first; that is its answer, not the test's failure.
        if let Err(e) = pipe.write_all(text.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let pid = child.id();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let waiter = std::thread::spawn(move || {
        let mut so = String::new();
        let mut se = String::new();
        let _ = out.read_to_string(&mut so);
        let _ = err.read_to_string(&mut se);
        let status = child.wait().expect("wait");
        let _ = tx.send(());
        (so, se, status.code().unwrap_or(-1))
    });
    if rx.recv_timeout(limit).is_err() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let (so, se, _) = waiter.join().expect("waiter");
        panic!("bank-master {args:?} ran longer than {limit:?}\nstdout:\n{so}\nstderr:\n{se}");
    }
    let (stdout, stderr, status) = waiter.join().expect("waiter");
    Run { stdout, stderr, status }
}

/// Runs the binary on `file` with `--seed seed` and extra `args`, 60 s at most.
pub fn run_file(file: &Path, seed: u64, args: &[&str]) -> Run {
    let seed = seed.to_string();
    let mut all = vec!["--seed", &seed];
    all.extend_from_slice(args);
    let f = file.to_str().expect("utf-8 path");
    all.push(f);
    run_with(&all, None, Duration::from_secs(60))
}

/// Fails with both texts shown when they differ.
pub fn assert_same(what: &str, want: &str, got: &str) {
    if want != got {
        panic!("{what}: output differs\n--- expected\n{want}\n--- got\n{got}\n---");
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = crate::util::check::unique();
        let p = std::env::temp_dir().join(format!("bank-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A process still using the directory (a Chromium whose handle was just dropped
        // and which exits on its own time, writing its profile as it goes) would leave
        // files behind: wait (10 s at most) until no process names it on its command
        // line, then remove it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while users_of(&self.0) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether a running process has `dir` in its command line.
fn users_of(dir: &Path) -> bool {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else { return false };
    procs.filter_map(Result::ok).any(|p| {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'));
        !zombie && String::from_utf8_lossy(&cmdline).contains(&needle)
    })
}

/// Replays the trace file `trace` through the checker and holds every snapshot printed in
/// `stdout` against it; with `all_printed`, every snapshot gathered must be printed.
/// Returns the checker, or what is wrong.
pub fn check_trace(
    trace: &Path,
    stdout: &str,
    all_printed: bool,
) -> Result<check::Checker, String> {
    use check::{parse_blocks, parse_trace_line, Checker};
    let text = std::fs::read_to_string(trace).map_err(|e| format!("read trace: {e}"))?;
    let mut c = Checker::new();
    for (i, line) in text.lines().enumerate() {
        let ev = parse_trace_line(line).map_err(|e| format!("trace line {}: {e}", i + 1))?;
        c.on_event(ev).map_err(|e| format!("trace line {}: {e}", i + 1))?;
    }
    // Gathered snapshots are printed in order. A rejected `CollectState` changes nothing,
    // so a `PrintSnapshot` after it prints the last gathering again; a gathering no
    // `PrintSnapshot` follows is not printed at all (unless `all_printed`).
    let mut next = 0;
    for (i, got) in parse_blocks(stdout).iter().enumerate() {
        if let Some(want) = c.collected.get(next) {
            let want = want.as_ref().map_err(|e| format!("gathered {next}: {e}"))?;
            if got == want {
                next += 1;
                continue;
            }
        }
        let again = c.collected[..next].iter().any(|w| w.as_ref().ok() == Some(got));
        let later = (!all_printed)
            .then(|| c.collected[next..].iter().position(|w| w.as_ref().ok() == Some(got)))
            .flatten();
        match (again, later) {
            (true, _) => {}
            (false, Some(j)) => next += j + 1,
            (false, None) => {
                return Err(format!("printed block {i} is not what the run recorded:\n{got:?}"))
            }
        }
    }
    if all_printed && next != c.collected.len() {
        return Err(format!("{} snapshots gathered, {next} printed", c.collected.len()));
    }
    Ok(c)
}
