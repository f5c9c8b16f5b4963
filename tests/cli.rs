//! The command line and the input's bytes (issue 10, defects 4–6): a path that exists is
//! always a file, whatever its name; child roles cannot be started by hand; clear errors
//! for two files, unreadable paths and binary data; a byte-order mark accepted; escape
//! codes in a rejected line never reach the terminal; children named in `ps`.

mod util;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use util::{run_with, TempDir};

/// Runs the binary in `dir` with `args`.
fn run_in(dir: &std::path::Path, args: &[&str]) -> util::Run {
    let out = Command::new(util::bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("BANK_MASTER_CHILD")
        .stdin(Stdio::null())
        .output()
        .expect("run bank-master");
    util::Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    }
}

// Files named like the roles and the help run as command files.
#[test]
fn a_file_is_a_file_whatever_its_name() {
    let tmp = TempDir::new("cli-names");
    for name in ["node", "observer", "help", "draw", "host", "keygen"] {
        std::fs::write(tmp.0.join(name), "StartMaster\nCreateNode 1 5\nBalances\n").unwrap();
        let run = run_in(&tmp.0, &[name]);
        assert_eq!((run.stdout.as_str(), run.status), ("node 1 = 5\n", 0), "{name}: {run:?}");
    }
}

// A role cannot be started from the command line, and none of its options show.
#[test]
fn roles_are_not_reachable_by_arguments() {
    let tmp = TempDir::new("cli-roles");
    let run = run_in(&tmp.0, &["node", "--id", "1"]);
    assert_eq!(run.status, 2, "{run:?}");
    let run = run_in(&tmp.0, &["observer"]);
    assert_eq!(run.status, 2, "{run:?}");
    assert!(run.stderr.contains("cannot read observer"), "{}", run.stderr);
    let help = run_in(&tmp.0, &["--help"]);
    assert_eq!(help.status, 0);
    for internal in ["--nonce", "--master-pid", "--run", "--balance", "--id", "Commands:"] {
        assert!(!help.stdout.contains(internal), "--help shows {internal}:\n{}", help.stdout);
    }
    // `help` with no such file is the help.
    let run = run_in(&tmp.0, &["help"]);
    assert!(run.status == 0 && run.stdout.contains("Usage: bank-master"), "{run:?}");
}

// Two files: a plain message, exit status 2.
#[test]
fn two_files_are_refused_plainly() {
    let tmp = TempDir::new("cli-two");
    let run = run_in(&tmp.0, &["a", "b"]);
    assert_eq!(run.status, 2);
    assert_eq!(
        run.stderr,
        "error: bank-master runs one command file, got 2: a b (run it once per file, or join \
         them into one)\n"
    );
}

// Paths that cannot be used are named; a binary file is refused before anything runs.
#[test]
fn bad_paths_and_binary_files_are_named() {
    let tmp = TempDir::new("cli-paths");
    let script = tmp.0.join("s.txt");
    std::fs::write(&script, "StartMaster\n").unwrap();
    let s = script.to_str().unwrap();
    let run = run_in(&tmp.0, &["--trace", "/no/such/dir/t.trace", s]);
    assert_eq!(run.status, 2);
    assert!(run.stderr.contains("/no/such/dir/t.trace"), "{}", run.stderr);
    std::fs::write(tmp.0.join("plain"), "x").unwrap();
    let run = run_in(&tmp.0, &["--data-dir", "plain/logs", s]);
    assert_eq!(run.status, 2);
    assert!(run.stderr.contains("plain/logs"), "{}", run.stderr);
    std::fs::write(tmp.0.join("bin"), b"StartMaster\n\0\x01\x02").unwrap();
    let run = run_in(&tmp.0, &["bin"]);
    assert_eq!((run.status, run.stdout.as_str()), (2, ""));
    assert!(run.stderr.contains("bin is not a command file"), "{}", run.stderr);
}

// A byte-order mark is not part of the first line; escape codes are echoed escaped;
// a long line is cut.
#[test]
fn hostile_bytes_stay_harmless() {
    let text = format!(
        "\u{feff}StartMaster\nCreateNode 1 5\n\x1b[2J\x1b]0;pwned\x07Balances\n{}\nBalances\n",
        "Send 1 1 ".repeat(500)
    );
    let run = run_with(&["--seed", "1"], Some(&text), Duration::from_secs(30));
    assert_eq!(run.stdout, "node 1 = 5\n");
    assert!(!run.stderr.contains('\x1b') && !run.stderr.contains('\x07'), "{:?}", run.stderr);
    assert!(
        run.stderr.contains("error: line 3: \\x1b[2J\\x1b]0;pwned\\x07Balances:"),
        "{}",
        run.stderr
    );
    let long = run.stderr.lines().find(|l| l.starts_with("error: line 4")).unwrap();
    assert!(long.len() < 400 && long.contains("more bytes"), "{long}");
    assert_eq!(run.status, 1);
}

// Children show what they are in ps: `bank-master observer`, `bank-master node 3`.
#[test]
fn children_show_their_role_in_ps() {
    let mut master = Command::new(util::bin())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = master.stdin.take().unwrap();
    writeln!(stdin, "StartMaster\nCreateNode 3 1\nBalances").unwrap();
    stdin.flush().unwrap();
    let mut out = std::io::BufReader::new(master.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "node 3 = 1\n");
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1));
        if ppid == Some(&master.id().to_string()) {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            names.push(String::from_utf8_lossy(&cmd).trim_end_matches('\0').replace('\0', " "));
        }
    }
    names.sort();
    assert_eq!(names, ["bank-master node 3", "bank-master observer"]);
    drop(stdin);
    assert!(master.wait().unwrap().success());
}
