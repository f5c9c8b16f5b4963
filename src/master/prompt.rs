//! The interactive prompt: line editing, history and Ctrl-R search with `rustyline`, used
//! when standard input is a terminal.
//!
//! The prompt and the echo of what is typed go to the terminal itself (`/dev/tty`), never
//! to stdout, which carries only the specified output even when it is redirected. History
//! is kept in `$XDG_DATA_HOME/bank-master/history` (or `~/.local/share/bank-master/
//! history`), or where `BANK_MASTER_HISTORY` says; an empty value keeps none.
//!
//! Lines typed while a command runs (type-ahead) are kept by the terminal itself: the
//! prompt turns its echo off between lines, so that what is typed never draws into a
//! load's progress bar, and takes those lines one at a time before it shows the editor
//! again (the editor would read them all at once and keep only the first). Each is shown
//! after the prompt as if typed there, and runs in turn.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg, Termios};
use rustyline::config::{Behavior, Config};
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the user sees before each command.
pub const PROMPT: &str = "bank> ";

/// What the user typed.
pub enum Typed {
    /// A line to run.
    Line(String),
    /// Ctrl-D: no more lines.
    End,
    /// Ctrl-C at the prompt.
    Interrupt,
}

/// A line editor on the terminal.
pub struct Prompt {
    editor: DefaultEditor,
    history: Option<PathBuf>,
    /// The terminal's settings, when they can be changed (its echo is off between lines).
    terminal: Option<Terminal>,
    /// Lines read and not yet given out: the rest of a paste of several lines.
    queued: VecDeque<String>,
    /// Typed ahead without a line's end yet: the editor starts with it.
    partial: String,
    /// The terminal, to show the lines typed ahead on.
    tty: Option<std::fs::File>,
}

/// The terminal's settings as the run found them, shared by the prompt (which turns the
/// echo off while a line runs) and whoever ends the run while the prompt may be waiting
/// in the editor on another thread ([`Terminal::give_back`]).
#[derive(Clone)]
pub struct Terminal(Arc<Mutex<(Termios, bool)>>);

impl Terminal {
    fn new() -> Option<Terminal> {
        let found = tcgetattr(std::io::stdin().as_fd()).ok()?;
        Some(Terminal(Arc::new(Mutex::new((found, false)))))
    }

    /// The found settings with `echo` on or off (nothing once given back).
    fn echo(&self, echo: bool) {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (found, given_back) = &*state;
        if *given_back {
            return;
        }
        let mut t = found.clone();
        if !echo {
            t.local_flags &= !(LocalFlags::ECHO | LocalFlags::ECHONL);
        }
        // Never a flush: what was typed ahead stays to be read.
        if let Err(e) = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &t) {
            log::warn!("master: cannot set the terminal's echo: {e}");
        }
    }

    /// Puts the found settings back for good: the run is over.
    pub fn give_back(&self) {
        self.echo(true);
        self.0.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
    }
}

/// Where the history file goes, if anywhere.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BANK_MASTER_HISTORY") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("bank-master").join("history"))
}

impl Prompt {
    /// A prompt with the saved history, or `None` when the terminal cannot be used.
    pub fn new() -> Option<Prompt> {
        let config = Config::builder().behavior(Behavior::PreferTerm).auto_add_history(true);
        let mut editor = match DefaultEditor::with_config(config.build()) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("master: no line editing ({e})");
                return None;
            }
        };
        let history = history_path();
        if let Some(p) = &history {
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = editor.load_history(p); // none yet the first time
        }
        let tty = std::fs::OpenOptions::new().write(true).open("/dev/tty").ok();
        let (terminal, queued, partial) = (Terminal::new(), VecDeque::new(), String::new());
        Some(Prompt { editor, history, terminal, queued, partial, tty })
    }

    /// The terminal's settings, to give back if the run ends while this prompt waits.
    pub fn terminal(&self) -> Option<Terminal> {
        self.terminal.clone()
    }

    /// The next line: typed ahead while the last one ran, or typed at the prompt.
    pub fn read(&mut self) -> Typed {
        if let Some(line) = self.queued.pop_front() {
            return Typed::Line(line);
        }
        match self.typed_ahead() {
            Some(Typed::Line(line)) => {
                self.show(&line);
                self.keep(&line);
                return Typed::Line(line);
            }
            Some(end) => return end,
            None => {}
        }
        if let Some(t) = &self.terminal {
            t.echo(true);
        }
        let partial = std::mem::take(&mut self.partial);
        let read = self.editor.readline_with_initial(PROMPT, (&partial, ""));
        let line = match read {
            Ok(line) => line,
            Err(ReadlineError::Eof) => return Typed::End,
            Err(ReadlineError::Interrupted) => return Typed::Interrupt,
            Err(e) => {
                log::error!("master: cannot read the terminal: {e}");
                return Typed::End;
            }
        };
        if let Some(t) = &self.terminal {
            t.echo(false);
        }
        self.save_history();
        // A paste of several lines runs line by line, as a file's would.
        let mut lines = line.lines().map(str::to_string);
        let first = lines.next().unwrap_or_default();
        self.queued.extend(lines);
        Typed::Line(first)
    }

    /// A whole line typed ahead, or the end of input typed ahead (Ctrl-D at a line's
    /// start); `None` when none is waiting. Only with the echo off between lines: the
    /// terminal then hands out one whole line per read.
    fn typed_ahead(&mut self) -> Option<Typed> {
        self.terminal.as_ref()?;
        let stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = self.partial.find('\n') {
                let rest = self.partial.split_off(at + 1);
                let line = std::mem::replace(&mut self.partial, rest);
                return Some(Typed::Line(line.trim_end_matches(['\n', '\r']).to_string()));
            }
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(n) if n > 0 => {}
                _ => return None,
            }
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) => return Some(Typed::End),
                Ok(n) => self.partial.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    log::warn!("master: cannot read what was typed ahead: {e}");
                    return None;
                }
            }
        }
    }

    /// Shows a line typed ahead after the prompt, as if typed there.
    fn show(&mut self, line: &str) {
        let shown = format!("{PROMPT}{line}\n");
        let written = match self.tty.as_mut() {
            Some(tty) => tty.write_all(shown.as_bytes()),
            None => std::io::stderr().write_all(shown.as_bytes()),
        };
        if let Err(e) = written {
            log::warn!("master: cannot show a line typed ahead: {e}");
        }
    }

    /// Adds a line typed ahead to the history, as the editor does its own.
    fn keep(&mut self, line: &str) {
        if let Err(e) = self.editor.add_history_entry(line) {
            log::warn!("master: cannot add to the history: {e}");
        }
        self.save_history();
    }

    fn save_history(&mut self) {
        if let Some(p) = &self.history {
            if let Err(e) = self.editor.save_history(p) {
                log::warn!("master: cannot save the history to {}: {e}", p.display());
                self.history = None;
            }
        }
    }
}

impl Drop for Prompt {
    fn drop(&mut self) {
        if let Some(t) = &self.terminal {
            t.give_back();
        }
    }
}
