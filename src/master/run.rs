//! Walks the command lines and runs each, keeping many commands in flight: from a file,
//! from standard input (at a prompt on a terminal), or with the live page (`web`).
//!
//! Every command gets a slot (`slots`); answers fill slots in any order and lines leave
//! in command order. The ledger predicts every answer of the snapshot commands, so those
//! are sent at once; a commit step is not predicted, so the master waits for its report
//! before going on; `CollectState`, `PrintSnapshot`, `KillAll` and the queries wait for
//! every answer first (barriers). See `session`.

use super::fatal::Fatal;
use super::printer::Printer;
use super::prompt::{Prompt, Typed};
use super::session::{Session, Settings};
use super::slots::Out;
use crate::command::parse_line;
use crate::output::{self, Arrow};
use std::fs::File;
use std::io::{BufRead, BufWriter};
use std::path::PathBuf;
use std::time::Duration;

/// Flush the links every this many commands so that nodes work while the master reads.
const FLUSH_EVERY: usize = 512;

/// Where the command lines come from.
pub enum Input {
    /// A whole file, already read.
    Text(String),
    /// Standard input, read line by line as it comes; `interactive` when it is a terminal.
    Stdin {
        /// Prompt after every line.
        interactive: bool,
    },
    /// The live page (`--web`): a file's lines first (or one per click with `step`),
    /// then what the page sends; without a file, standard input's lines and the page's
    /// together, in the order they come. Until the page's `KillAll` or Ctrl-C.
    Web {
        /// The command file; `None` for standard input.
        file: Option<String>,
        /// Run the file one line per click.
        step: bool,
        /// Standard input is a terminal: its lines are typed at a prompt.
        interactive: bool,
    },
}

/// What the master is run with.
pub struct Config {
    /// The command lines.
    pub input: Input,
    /// The seed of every random choice.
    pub seed: u64,
    /// Where to write the trace, if anywhere.
    pub trace: Option<PathBuf>,
    /// How to draw channel arrows.
    pub arrow: Arrow,
    /// Where node logs are kept; `None` for unnamed temporary files.
    pub data_dir: Option<PathBuf>,
    /// `--resume`: the bank to bring back from `data_dir` before the first line.
    pub resume: Option<super::saved::Saved>,
    /// How long the master waits for any answer before it declares the run hung.
    pub watchdog: Duration,
    /// The live page's server, when `--web` started one.
    pub web: Option<crate::web::Web>,
    /// The hosts the nodes run on (`--hosts`), or `None` for this machine.
    pub hosts: Option<crate::cluster::Hosts>,
}

/// Runs every command line. Returns the exit status: 0 when every line ran, 1 when a
/// line was rejected or the run failed, 2 when it could not start.
pub fn run(cfg: Config) -> i32 {
    let trace = match cfg.trace.as_ref().map(|p| (p, File::create(p))) {
        None => None,
        Some((_, Ok(f))) => Some(BufWriter::new(f)),
        Some((path, Err(e))) => {
            eprintln!(
                "{}",
                output::fatal(format!("cannot create the trace file {}: {e}", path.display()))
            );
            return 2;
        }
    };
    let open_files = crate::process::raise_open_files_limit();
    let settings = Settings {
        arrow: cfg.arrow,
        data_dir: cfg.data_dir,
        hosts: cfg.hosts,
        open_files,
        max_nodes: crate::process::nodes_that_fit(open_files),
    };
    let mut s = Session::new(Printer::new(trace, cfg.web), settings, cfg.seed, cfg.watchdog);
    let resumed = match cfg.resume {
        Some(saved) => s.resume(saved),
        None => Ok(()),
    };
    let result = resumed.and_then(|()| walk(&mut s, cfg.input)).and_then(|()| finish(&mut s));
    drop(s.sys.take());
    s.printer.finish();
    match result {
        Ok(()) => i32::from(s.rejected),
        Err(why) => {
            eprintln!("{}", output::fatal(why));
            1
        }
    }
}

fn walk(s: &mut Session, input: Input) -> Result<(), Fatal> {
    match input {
        Input::Text(text) => walk_text(s, &text),
        Input::Web { file, step, interactive } => super::web::walk_web(s, file, step, interactive),
        Input::Stdin { interactive: true } => match Prompt::new() {
            Some(prompt) => walk_prompt(s, prompt),
            None => walk_stdin(s, true),
        },
        Input::Stdin { interactive: false } => walk_stdin(s, false),
    }
}

fn walk_text(s: &mut Session, text: &str) -> Result<(), Fatal> {
    for (i, text) in text.lines().enumerate() {
        line(s, i + 1, text)?;
        if (i + 1) % FLUSH_EVERY == 0 {
            if let Some(sys) = s.sys.as_mut() {
                sys.flush_all()?;
                sys.poll_now()?;
            }
        }
    }
    Ok(())
}

/// Standard input that is no terminal (or one the editor cannot drive): each line runs
/// as it comes; when no whole line is there yet, what was asked so far is finished and
/// shown first.
fn walk_stdin(s: &mut Session, interactive: bool) -> Result<(), Fatal> {
    let mut stdin = std::io::BufReader::new(std::io::stdin().lock());
    let mut bytes = Vec::new();
    let mut n = 0;
    loop {
        if !stdin.buffer().contains(&b'\n') {
            s.barrier()?;
            s.flush()?;
            if interactive {
                eprint!("bank> ");
            }
        }
        bytes.clear();
        match stdin.read_until(b'\n', &mut bytes) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("master: cannot read standard input: {e}");
                break;
            }
        }
        n += 1;
        line(s, n, &stdin_line(&mut bytes, n == 1))?;
    }
    if interactive {
        eprintln!();
    }
    Ok(())
}

/// Runs the lines typed at the terminal's prompt.
fn walk_prompt(s: &mut Session, mut prompt: Prompt) -> Result<(), Fatal> {
    let mut n = 0;
    loop {
        // What was asked so far is finished and shown before the next prompt.
        s.barrier()?;
        s.flush()?;
        let Typed::Line(text) = prompt.read() else { return Ok(()) };
        n += 1;
        line(s, n, &text)?;
    }
}

/// The input is over: a load still running ends, driven transfers finish, every line
/// is out, and the system ends.
fn finish(s: &mut Session) -> Result<(), Fatal> {
    if s.sys.is_some() {
        s.wait_load()?;
    }
    s.settle()?;
    s.sys = None;
    s.emit()
}

/// Runs line `n`.
pub fn line(s: &mut Session, n: usize, text: &str) -> Result<(), Fatal> {
    s.at_line(n);
    match parse_line(n, text) {
        Ok(None) => {}
        Ok(Some(cmd)) => s.execute(n, text.trim(), cmd)?,
        Err(e) => s.push_done(vec![Out::Error(output::unparsed(e))], true),
    }
    s.drain_events()?;
    s.emit()
}

/// A line of standard input as it runs: without its end, the first line without a
/// byte-order mark; as for a file, a stray non-UTF-8 byte spoils its line only.
pub fn stdin_line(bytes: &mut Vec<u8>, first: bool) -> std::borrow::Cow<'_, str> {
    for end in [b'\n', b'\r'] {
        if bytes.last() == Some(&end) {
            bytes.pop();
        }
    }
    if first && bytes.starts_with("\u{feff}".as_bytes()) {
        bytes.drain(..3);
    }
    String::from_utf8_lossy(bytes)
}
