//! The master's side of `--web`: the loop that takes lines from a file, or from standard
//! input, and from the page, and the state object the page shows after each one (built
//! from the ledger, the transactions and the last gathering, all as the master knows them
//! once the line has finished).
//!
//! Without a FILE, standard input is read on a thread of its own ([`Stdin`]) that sends
//! its lines on the page's request channel: the master's loop blocks on that one channel
//! and runs lines from both in the order they come. A `KillAll` from standard input ends
//! the system, as a file's does; the session ends at the page's `KillAll` or Ctrl-C.

use super::fatal::Fatal;
use super::ledger::Ledger;
use super::prompt::{Prompt, Terminal, Typed};
use super::run::{line, stdin_line};
use super::session::Session;
use crate::command::{parse_line, Command};
use crate::output::Overall;
use crate::web::Request;
use crate::wire::{ChannelMsg, TxOutcome};
use crossbeam_channel::Sender;
use serde_json::{json, Map, Value};
use std::io::{BufRead, Write};

/// Where a `--step` run is in its file: the next line (from 1), the file's length, and
/// the next line's text (`None` at the end).
type Step = (usize, usize, Option<String>);

/// Runs a file's lines (all at once, or one per `Step` click), then the page's lines; or,
/// without a file, standard input's lines and the page's as they come; publishing the
/// state after each. Ends on a `KillAll` from the page, Ctrl-C at the prompt, or when the
/// page's server is gone.
pub fn walk_web(
    s: &mut Session,
    file: Option<String>,
    step: bool,
    interactive: bool,
) -> Result<(), Fatal> {
    let mut stdin = match (&file, &s.printer.web) {
        (None, Some(w)) => Some(Stdin::start(w.sender(), interactive)),
        _ => None,
    };
    let text = file.unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let (mut next, mut n) = (0, 0);
    let at =
        |next: usize| step.then(|| (next + 1, lines.len(), lines.get(next).map(|l| l.to_string())));
    loop {
        // Comments and blank lines run along (a click is for a command).
        while next < lines.len() && (!step || is_blank(lines[next])) {
            web_line(s, &mut n, lines[next])?;
            next += 1;
        }
        publish(s, at(next), n);
        let Some(req) = s.printer.web.as_mut().and_then(|w| w.next_request()) else { break };
        if let (Some(i), Request::Stdin(_) | Request::StdinEnded | Request::Interrupted) =
            (stdin.as_mut(), &req)
        {
            i.waiting = false;
        }
        match req {
            Request::Step => {
                if let Some(text) = lines.get(next) {
                    web_line(s, &mut n, text)?;
                    next += 1;
                }
            }
            Request::Line(text) => {
                let kill = matches!(parse_line(n + 1, &text), Ok(Some(Command::KillAll)));
                web_line(s, &mut n, &text)?;
                if kill {
                    break;
                }
            }
            Request::Stdin(text) => {
                web_line(s, &mut n, &text)?;
                if let Some(i) = stdin.as_mut() {
                    i.ask();
                }
            }
            Request::StdinEnded => {}
            Request::Interrupted => break,
        }
    }
    drop(stdin);
    publish(s, at(next), n);
    if let Some(w) = s.printer.web.as_mut() {
        w.end();
    }
    Ok(())
}

/// One line of the session: logged, run, finished and shown.
fn web_line(s: &mut Session, n: &mut usize, text: &str) -> Result<(), Fatal> {
    *n += 1;
    if let Some(w) = s.printer.web.as_mut() {
        w.ran(text);
    }
    line(s, *n, text)?;
    s.barrier()?;
    s.flush()
}

fn publish(s: &mut Session, step: Option<Step>, lines_run: usize) {
    let state = web_state(s, step, lines_run);
    if let Some(w) = s.printer.web.as_mut() {
        w.publish(state);
    }
}

/// What the page shows now.
fn web_state(s: &Session, step: Option<Step>, lines_run: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("system".into(), s.sys.is_some().into());
    m.insert("live".into(), s.is_live().into());
    m.insert("lines_run".into(), lines_run.into());
    let step =
        step.map_or(Value::Null, |(line, of, text)| json!({"line": line, "of": of, "text": text}));
    m.insert("step".into(), step);
    let Some(sys) = s.sys.as_ref() else { return m };
    m.insert("nodes".into(), nodes(&sys.ledger).into());
    m.insert("channels".into(), channels(&sys.ledger).into());
    m.insert("transactions".into(), transactions(s).into());
    m.insert("snapshots".into(), snapshots(s).into());
    m
}

/// Every node: its money, and whether it is up, down, paused or cut off.
fn nodes(ledger: &Ledger) -> Vec<Value> {
    ledger
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
        .collect()
}

/// Every non-empty channel with what it holds.
fn channels(ledger: &Ledger) -> Vec<Value> {
    ledger
        .queued()
        .into_iter()
        .map(|((from, to), msgs)| {
            let labels: Vec<String> = msgs.iter().map(label).collect();
            json!({"from": from.0, "to": to.0, "held": ledger.is_held((from, to)), "messages": labels})
        })
        .collect()
}

/// Every transaction, by number, with how it stands.
fn transactions(s: &Session) -> Vec<Value> {
    let txns = &s.book.txns;
    txns.all()
        .into_iter()
        .map(|tx| {
            let t = &txns.specs[&tx];
            let state = match s.overall(tx) {
                Overall::Decided(TxOutcome::Aborted(r)) => format!("ABORTED {}", r.as_str()),
                other => other.word().to_string(),
            };
            let protocol = txns.protocol_of(tx).word();
            // A transfer's two sides; for more parts, the first of each.
            let payer = t.parts.iter().find(|p| p.delta < 0).map_or(t.coord, |p| p.node);
            let payee = t.parts.iter().find(|p| p.delta > 0).map_or(t.coord, |p| p.node);
            let amount: i64 = t.parts.iter().map(|p| p.delta.max(0)).sum();
            json!({
                "tx": tx.to_string(), "from": payer.0, "to": payee.0,
                "amount": amount, "protocol": protocol, "state": state,
                "parts": t.parts.iter().map(|p| json!([p.node.0, p.delta])).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// What the last `CollectState` gathered.
fn snapshots(s: &Session) -> Vec<Value> {
    s.book
        .snaps
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
        .collect()
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
    Request::Stdin(stdin_line(&mut bytes, *n == 1).into_owned())
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
