//! The master's side of `--web`: the loop that takes lines from a file and from the page,
//! and the state object the page shows after each one (built from the ledger, the
//! transactions and the last gathering, all as the master knows them once the line has
//! finished).

use super::{Fatal, Master};
use crate::command::{parse_line, Command};
use crate::web::Request;
use crate::wire::{ChannelMsg, TxOutcome};
use serde_json::{json, Map, Value};
use std::io::Write;

/// Where a `--step` run is in its file: the next line (from 1), the file's length, and
/// the next line's text (`None` at the end).
type Step = (usize, usize, Option<String>);

impl Master {
    /// Runs a file's lines (all at once, or one per `Step` click), then the page's lines,
    /// publishing the state after each; ends on a `KillAll` from the page, or when the
    /// page's server is gone.
    pub(super) fn walk_web(&mut self, file: Option<String>, step: bool) -> Result<(), Fatal> {
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
            }
        }
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
