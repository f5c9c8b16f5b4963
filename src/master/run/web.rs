//! The master's side of `--web`: the loop that takes lines from a file, or from standard
//! input, and from the page, and the state object the page shows after each one (built
//! from the ledger, the transactions and the last gathering, all as the master knows them
//! once the line has finished).
//!
//! Without a FILE, standard input is read on a thread of its own ([`Stdin`]) that sends
//! its lines on the page's request channel: the master's loop blocks on that one channel
//! and runs lines from both in the order they come. A `KillAll` from standard input ends
//! the system, as a file's does; the session ends at the page's `KillAll` or Ctrl-C.

use super::{Fatal, Master};
use crate::command::{parse_line, Command};
use crate::master::prompt::{Prompt, Terminal, Typed};
use crate::web::Request;
use crate::wire::{ChannelMsg, TxOutcome};
use crossbeam_channel::Sender;
use serde_json::{json, Map, Value};
use std::io::{BufRead, Write};

/// Where a `--step` run is in its file: the next line (from 1), the file's length, and
/// the next line's text (`None` at the end).
type Step = (usize, usize, Option<String>);

impl Master {
    /// Runs a file's lines (all at once, or one per `Step` click), then the page's lines;
    /// or, without a file, standard input's lines and the page's as they come; publishing
    /// the state after each. Ends on a `KillAll` from the page, Ctrl-C at the prompt, or
    /// when the page's server is gone.
    pub(super) fn walk_web(
        &mut self,
        file: Option<String>,
        step: bool,
        interactive: bool,
    ) -> Result<(), Fatal> {
        let mut stdin = match (&file, &self.web) {
            (None, Some(w)) => Some(Stdin::start(w.sender(), interactive)),
            _ => None,
        };
        let text = file.unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let mut next = 0;
        let mut n = 0;
        let at = |next: usize| {
            step.then(|| (next + 1, lines.len(), lines.get(next).map(|l| l.to_string())))
        };
        loop {
            // Comments and blank lines run along (a click is for a command).
            while next < lines.len() && (!step || is_blank(lines[next])) {
                self.web_line(&mut n, lines[next])?;
                next += 1;
            }
            self.publish_web(at(next), n);
            let Some(req) = self.web.as_mut().and_then(|w| w.next_request()) else { break };
            if let (Some(s), Request::Stdin(_) | Request::StdinEnded | Request::Interrupted) =
                (stdin.as_mut(), &req)
            {
                s.waiting = false;
            }
            match req {
                Request::Step => {
                    if let Some(line) = lines.get(next) {
                        self.web_line(&mut n, line)?;
                        next += 1;
                    }
                }
                Request::Line(line) => {
                    let kill = matches!(parse_line(n + 1, &line), Ok(Some(Command::KillAll)));
                    self.web_line(&mut n, &line)?;
                    if kill {
                        break;
                    }
                }
                Request::Stdin(line) => {
                    self.web_line(&mut n, &line)?;
                    if let Some(s) = stdin.as_mut() {
                        s.ask();
                    }
                }
                Request::StdinEnded => {}
                Request::Interrupted => break,
            }
        }
        drop(stdin);
        self.publish_web(at(next), n);
        if let Some(w) = self.web.as_mut() {
            w.end();
        }
        Ok(())
    }

    /// One line of the session: logged, run, finished and shown.
    fn web_line(&mut self, n: &mut usize, text: &str) -> Result<(), Fatal> {
        *n += 1;
        if let Some(w) = self.web.as_mut() {
            w.ran(text);
        }
        self.line(*n, text)?;
        self.barrier()?;
        self.stdout.flush().map_err(super::stdout_gone)
    }

    fn publish_web(&mut self, step: Option<Step>, lines_run: usize) {
        let state = self.web_state(step, lines_run);
        if let Some(w) = self.web.as_mut() {
            w.publish(state);
        }
    }

    /// What the page shows now.
    fn web_state(&self, step: Option<Step>, lines_run: usize) -> Map<String, Value> {
        let mut s = Map::new();
        s.insert("system".into(), self.system.is_some().into());
        s.insert("live".into(), self.live.is_some().into());
        s.insert("lines_run".into(), lines_run.into());
        s.insert(
            "step".into(),
            step.map_or(
                Value::Null,
                |(line, of, text)| json!({"line": line, "of": of, "text": text}),
            ),
        );
        let Some(sys) = self.system.as_ref() else { return s };
        let ledger = &sys.ledger;
        let nodes: Vec<Value> = ledger
            .nodes()
            .map(|n| {
                let state = if ledger.is_down(n) {
                    "down"
                } else if ledger.is_paused(n) {
                    "paused"
                } else {
                    "up"
                };
                json!({
                    "id": n.0,
                    "balance": ledger.balance(n).0,
                    "held": ledger.held(n).0,
                    "state": state,
                    "cut": ledger.in_partition(n),
                })
            })
            .collect();
        s.insert("nodes".into(), nodes.into());
        let channels: Vec<Value> = ledger
            .queued()
            .into_iter()
            .map(|((from, to), msgs)| {
                let labels: Vec<String> = msgs.iter().map(label).collect();
                json!({"from": from.0, "to": to.0, "held": ledger.is_held((from, to)), "messages": labels})
            })
            .collect();
        s.insert("channels".into(), channels.into());
        let mut specs: Vec<_> = self.txns.specs.values().cloned().collect();
        specs.sort_by_key(|t| t.tx);
        let txs: Vec<Value> = specs
            .iter()
            .map(|t| {
                let state = match self.txns.outcomes.get(&t.tx) {
                    Some(TxOutcome::Aborted(r)) => format!("ABORTED {}", r.as_str()),
                    _ => self.tx_overall(t).to_string(),
                };
                let protocol = self.txns.runs_by.get(&t.tx).map_or("2pc", |p| p.0.word());
                // A transfer's two sides; for more parts, the first of each.
                let payer = t.parts.iter().find(|p| p.delta < 0).map_or(t.coord, |p| p.node);
                let payee = t.parts.iter().find(|p| p.delta > 0).map_or(t.coord, |p| p.node);
                let amount: i64 = t.parts.iter().map(|p| p.delta.max(0)).sum();
                json!({
                    "tx": t.tx.to_string(), "from": payer.0, "to": payee.0,
                    "amount": amount, "protocol": protocol, "state": state,
                    "parts": t.parts.iter().map(|p| json!([p.node.0, p.delta])).collect::<Vec<_>>(),
                })
            })
            .collect();
        s.insert("transactions".into(), txs.into());
        let snaps: Vec<Value> = self
            .gathered
            .iter()
            .map(|g| {
                let chans: Vec<Value> = g
                    .channels
                    .iter()
                    .filter(|c| c.2 .0 > 0)
                    .map(|c| json!([c.0 .0, c.1 .0, c.2 .0]))
                    .collect();
                json!({
                    "id": g.snapshot.0,
                    "nodes": g.nodes.iter().map(|n| json!([n.0 .0, n.1 .0])).collect::<Vec<_>>(),
                    "channels": chans,
                    "total": g.total().map_or(0, |a| a.0),
                })
            })
            .collect();
        s.insert("snapshots".into(), snaps.into());
        s
    }
}

/// Standard input's lines for `--web` without a FILE, read on a thread of their own and
/// sent to the master's loop as [`Request::Stdin`]. A line is read (and the prompt shown)
/// only when the master asks, once the last one has run: what is typed meanwhile is kept
/// as type-ahead, and a piped file waits while the page's lines run.
struct Stdin {
    /// Asks the reader for the next line.
    next: Sender<()>,
    /// The terminal, given back when the session ends while the prompt waits.
    terminal: Option<Terminal>,
    /// A line was asked for and has not come yet.
    waiting: bool,
}

impl Stdin {
    fn start(to: Sender<Request>, interactive: bool) -> Stdin {
        let mut prompt = if interactive { Prompt::new() } else { None };
        let terminal = prompt.as_ref().and_then(Prompt::terminal);
        let (next, asked) = crossbeam_channel::bounded::<()>(1);
        let read = move || {
            let mut n = 0;
            while asked.recv().is_ok() {
                let req = match prompt.as_mut().map(Prompt::read) {
                    Some(Typed::Line(line)) => Request::Stdin(line),
                    Some(Typed::End) => Request::StdinEnded,
                    Some(Typed::Interrupt) => Request::Interrupted,
                    // Locked for a line only: the editor locks it on a terminal it cannot
                    // drive (TERM=dumb).
                    None => read_piped(&mut std::io::stdin().lock(), &mut n),
                };
                let more = matches!(req, Request::Stdin(_));
                if to.send(req).is_err() || !more {
                    break;
                }
            }
        };
        if let Err(e) = std::thread::Builder::new().name("stdin".into()).spawn(read) {
            log::error!("master: cannot read standard input (no thread: {e}); the page goes on");
        }
        let mut stdin = Stdin { next, terminal, waiting: false };
        stdin.ask();
        stdin
    }

    /// Asks for the next line.
    fn ask(&mut self) {
        self.waiting = self.next.send(()).is_ok();
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        let Some(terminal) = self.terminal.take() else { return };
        terminal.give_back();
        if self.waiting {
            // The prompt is still shown: end its line, and the editor's bracketed paste.
            let tty = std::fs::OpenOptions::new().write(true).open("/dev/tty");
            let _ = tty.and_then(|mut t| t.write_all(b"\x1b[?2004l\n"));
        }
    }
}

/// The next line of standard input that is not a terminal.
fn read_piped(stdin: &mut impl BufRead, n: &mut usize) -> Request {
    let mut bytes = Vec::new();
    loop {
        match stdin.read_until(b'\n', &mut bytes) {
            Ok(0) => return Request::StdinEnded,
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::error!("master: cannot read standard input: {e}");
                return Request::StdinEnded;
            }
        }
    }
    *n += 1;
    Request::Stdin(super::stdin_line(&mut bytes, *n == 1).into_owned())
}

/// A line with no command: blank or a comment.
fn is_blank(line: &str) -> bool {
    let t = line.trim_start_matches('\u{feff}').trim();
    t.is_empty() || t.starts_with('#')
}

/// A queued message as the page shows it.
fn label(m: &ChannelMsg) -> String {
    match m {
        ChannelMsg::Transfer { amount } => format!("${amount}"),
        ChannelMsg::Marker { snapshot } => format!("marker S{snapshot}"),
        ChannelMsg::Commit(t) => format!("{} {}", t.kind(), t.tx()),
    }
}
