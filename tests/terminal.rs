//! The master on a real terminal (a pseudo-terminal this test makes): line editing and
//! history at the `bank> ` prompt, a load's progress bar on stderr that never reaches
//! stdout, lines typed ahead while a command runs, and the prompt with `--web`.

mod util;

use crossbeam_channel::Receiver;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use util::TempDir;

/// What the terminal has shown so far, filled by a reader thread.
#[derive(Default)]
struct Screen {
    text: Mutex<String>,
    grew: Condvar,
}

impl Screen {
    /// Waits until `ready` holds for what the terminal has shown since byte `mark` (at
    /// most `limit`); returns whether it did.
    fn wait(&self, mark: usize, limit: Duration, ready: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut text = self.text.lock().unwrap();
        while !ready(text.get(mark..).unwrap_or("")) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            text = self.grew.wait_timeout(text, left).unwrap().0;
        }
        true
    }

    fn len(&self) -> usize {
        self.text.lock().unwrap().len()
    }
}

/// Whether `text` ends with a fresh prompt: `bank> ` with nothing typed after it (escape
/// sequences aside).
fn at_fresh_prompt(text: &str) -> bool {
    let Some(at) = text.rfind("bank> ") else { return false };
    let mut rest = text[at + 6..].chars();
    while let Some(c) = rest.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ parameters final-byte
                if rest.next() == Some('[') {
                    for d in rest.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
            }
            '\r' | '\x07' => {}
            _ => return false,
        }
    }
    true
}

/// A master whose stdin and stderr are a terminal (its controlling one) and whose stdout
/// is a pipe.
struct OnTerminal {
    child: std::process::Child,
    keys: std::fs::File,
    screen: Arc<Screen>,
    /// How much the terminal had shown when the last keys were typed.
    typed: usize,
    /// stdout's lines as they come; the channel ends with stdout.
    out: Receiver<String>,
}

fn start(args: &[&str], history: &std::path::Path) -> OnTerminal {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let (master, slave): (OwnedFd, OwnedFd) = (pty.master, pty.slave);
    let slave_fd = slave.as_raw_fd();
    let mut cmd = Command::new(util::bin());
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env("BANK_MASTER_HISTORY", history)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped());
    // SAFETY: between fork and exec only setsid and ioctl, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if nix::libc::ioctl(slave_fd, nix::libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start bank-master");
    drop(slave);
    let (line_tx, out) = crossbeam_channel::unbounded();
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    std::thread::spawn(move || {
        let mut line = String::new();
        while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = line_tx.send(std::mem::take(&mut line));
        }
    });
    let screen = Arc::new(Screen::default());
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let s = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.text.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            s.grew.notify_all();
        }
    });
    OnTerminal { child, keys: std::fs::File::from(master), screen, typed: 0, out }
}

impl OnTerminal {
    /// Waits for a fresh prompt after everything typed so far, then types `keys`.
    fn type_keys(&mut self, keys: &str) {
        let ready = self.screen.wait(self.typed, Duration::from_secs(30), at_fresh_prompt);
        let text = self.screen.text.lock().unwrap().clone();
        assert!(ready, "no prompt came for {keys:?}; the terminal shows:\n{text}");
        self.typed = self.screen.len();
        self.keys.write_all(keys.as_bytes()).unwrap();
    }

    /// Waits for a fresh prompt after everything typed so far: the last line has run.
    fn wait_prompt(&self) {
        let ready = self.screen.wait(self.typed, Duration::from_secs(30), at_fresh_prompt);
        let text = self.screen.text.lock().unwrap().clone();
        assert!(ready, "no prompt came; the terminal shows:\n{text}");
    }

    /// Types `keys` at once, without waiting for a prompt.
    fn type_ahead(&mut self, keys: &str) {
        self.typed = self.screen.len();
        self.keys.write_all(keys.as_bytes()).unwrap();
    }

    /// Waits (30 s at most for each) for stdout's next lines, which must be `want`.
    fn expect(&self, want: &[&str]) {
        for w in want {
            let got = self.out.recv_timeout(Duration::from_secs(30));
            assert_eq!(got.as_deref().map(str::trim_end), Ok(*w), "stdout's next line");
        }
    }

    /// The live page's address, once the master has shown it.
    fn url(&self) -> String {
        let shown =
            |s: &str| s.contains("/?token=") && s[s.find("/?token=").unwrap()..].contains('\n');
        assert!(self.screen.wait(0, Duration::from_secs(30), shown), "no live page address");
        let text = self.screen.text.lock().unwrap().clone();
        let at = text.find("http://").expect("an address");
        text[at..].split_whitespace().next().unwrap().to_string()
    }

    /// Ctrl-D at the next prompt, then what the master printed on stdout and what the
    /// terminal showed.
    fn finish(mut self) -> (String, String, i32) {
        self.type_keys("\x04");
        self.wait_end()
    }

    /// Waits (30 s at most) for the master to end; what it printed on stdout (the lines
    /// not yet taken), what the terminal showed, and its exit status.
    fn wait_end(&mut self) -> (String, String, i32) {
        let mut out = String::new();
        loop {
            match self.out.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => out.push_str(&line),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("the master did not end: {e}; stdout so far:\n{out}"),
            }
        }
        let status = self.child.wait().unwrap().code().unwrap_or(-1);
        let screen = self.screen.text.lock().unwrap().clone();
        (out, screen, status)
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        // A failing test must not leave its master waiting at a prompt.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The prompt edits lines (the up arrow brings the last one back), keeps the history in
// the file it is given, and writes nothing of its own to stdout.
#[test]
fn the_prompt_edits_lines_and_keeps_history() {
    let tmp = TempDir::new("terminal");
    let history = tmp.0.join("history");
    let mut t = start(&["--seed", "1"], &history);
    t.type_keys("StartMaster\r");
    t.type_keys("CreateNode 1 5\r");
    t.type_keys("Balances\r");
    t.type_keys("\x1b[A\r"); // up arrow: Balances again
    t.type_keys("CreateNode 2 x\r");
    let (out, screen, status) = t.finish();
    assert_eq!(out, "node 1 = 5\nnode 1 = 5\n", "the terminal showed:\n{screen}");
    assert_eq!(status, 1, "a line was rejected");
    assert!(screen.contains("error: line 5: CreateNode 2 x: amount \"x\" is not an integer"));
    let saved = std::fs::read_to_string(&history).unwrap();
    let lines: Vec<&str> = saved.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, ["StartMaster", "CreateNode 1 5", "Balances", "CreateNode 2 x"]);
    // The next session starts with that history: the up arrow brings back its last line.
    let mut t = start(&["--seed", "1"], &history);
    t.type_keys("StartMaster\r");
    t.type_keys("CreateNode 1 7\r");
    // Back past CreateNode 1 7, StartMaster and CreateNode 2 x (the last session's): Balances.
    t.type_keys("\x1b[A\x1b[A\x1b[A\x1b[A\r");
    let (out, _, status) = t.finish();
    assert_eq!((out.as_str(), status), ("node 1 = 7\n", 0));
}

// A load on a terminal draws a progress bar on stderr, and nothing of it reaches stdout.
#[test]
fn a_load_shows_progress_on_the_terminal_only() {
    let tmp = TempDir::new("terminal-load");
    let mut t = start(&["--seed", "1"], &tmp.0.join("history"));
    t.type_keys("StartMaster\r");
    t.type_keys("CreateNode 1 1000000\r");
    t.type_keys("CreateNode 2 1000000\r");
    t.type_keys("Live on\r");
    t.type_keys("Load 1500000 sends seed 3\r");
    let mark = t.typed;
    let drawn = t.screen.wait(mark, Duration::from_secs(60), |s| s.contains("operations"));
    let (out, screen, status) = t.finish();
    assert_eq!(status, 0, "{screen}");
    assert!(drawn, "no progress bar on the terminal:\n{screen}");
    assert!(out.starts_with("LOAD 1500000 committed=") && out.lines().count() == 1, "{out}");
}

// Lines typed while a long load runs are all kept and run in order once it is done, each
// shown after a prompt as if typed there; none is echoed into the load's progress bar.
#[test]
fn lines_typed_during_a_load_all_run_in_order() {
    let tmp = TempDir::new("terminal-ahead");
    let mut t = start(&["--seed", "1"], &tmp.0.join("history"));
    for line in ["StartMaster", "CreateNode 1 1000000", "CreateNode 2 1000000", "Live on"] {
        t.type_keys(&format!("{line}\r"));
    }
    t.type_keys("Load 1500000 sends seed 3\r");
    let mark = t.typed;
    let drawn = t.screen.wait(mark, Duration::from_secs(60), |s| s.contains("operations"));
    assert!(drawn, "no progress bar on the terminal");
    let ahead = [
        "Check",
        "Stats",
        "Live off",
        "BeginSnapshot 1",
        "ReceiveAll",
        "CollectState",
        "PrintSnapshot",
    ];
    t.type_ahead(&ahead.map(|l| format!("{l}\r")).concat());
    let typed = t.typed;
    let (out, screen, status) = t.finish();
    assert_eq!(status, 0, "{screen}");
    // The keys came while the load ran: its bar was drawn again after them.
    assert!(screen[typed..].contains("operations"), "the load ended before the keys came");
    for line in ahead {
        let shown: Vec<_> = screen.match_indices(line).map(|(at, _)| at).collect();
        assert!(!shown.is_empty(), "{line:?} never shown:\n{screen}");
        for at in shown {
            assert!(
                screen[..at].ends_with("bank> "),
                "{line:?} echoed outside a prompt:\n{screen}"
            );
        }
    }
    assert!(out.starts_with("LOAD 1500000 committed="), "{out}");
    assert!(out.contains("\nStarted by Node 1\n"), "BeginSnapshot did not run:\n{out}");
    assert!(out.contains("\n---Node states\nnode 1 = "), "PrintSnapshot did not run:\n{out}");
}

/// Sends `lines` to the live page at `url` as its command box does; the status code.
fn post(url: &str, lines: &str) -> u16 {
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    let token = url.split("token=").nth(1).unwrap();
    let mut s = std::net::TcpStream::connect(host).expect("connect to the page");
    let request = format!(
        "POST /api/command HTTP/1.1\r\nHost: {host}\r\nx-bank-token: {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{lines}",
        lines.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = BufReader::new(s).read_line(&mut reply);
    reply.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

// `--web` at a terminal: the prompt and the page drive one run, their lines in the order
// they come. The page's KillAll ends it while the prompt waits, and the terminal is given
// back as it was; Ctrl-D ends the typing only, and the page goes on.
#[test]
fn the_prompt_and_the_live_page_drive_one_run() {
    let tmp = TempDir::new("terminal-web");
    let history = tmp.0.join("history");
    let mut t = start(&["--seed", "1", "--web"], &history);
    let url = t.url();
    t.type_keys("StartMaster\r");
    t.type_keys("CreateNode 1 5\r");
    t.wait_prompt();
    assert_eq!(post(&url, "CreateNode 2 7\nSend 1 2 3\nBalances"), 202);
    t.expect(&["node 1 = 2", "node 2 = 7"]);
    t.type_keys("Receive 2\r");
    t.expect(&["1 Transfer 3"]);
    t.type_keys("Balances\r");
    t.expect(&["node 1 = 2", "node 2 = 10"]);
    t.wait_prompt(); // the prompt waits for a line when the page ends the run
    assert_eq!(post(&url, "KillAll"), 202);
    let (out, screen, status) = t.wait_end();
    assert_eq!((out.as_str(), status), ("", 0), "{screen}");
    use nix::sys::termios::{tcgetattr, LocalFlags};
    let flags = tcgetattr(&t.keys).expect("the terminal's settings").local_flags;
    assert!(flags.contains(LocalFlags::ECHO | LocalFlags::ICANON), "not given back: {flags:?}");

    let mut t = start(&["--seed", "1", "--web"], &history);
    let url = t.url();
    t.type_keys("StartMaster\r");
    t.type_keys("CreateNode 1 5\r");
    t.type_keys("\x04");
    assert_eq!(post(&url, "Balances"), 202);
    t.expect(&["node 1 = 5"]);
    assert_eq!(post(&url, "KillAll"), 202);
    let (out, screen, status) = t.wait_end();
    assert_eq!((out.as_str(), status), ("", 0), "{screen}");
}
