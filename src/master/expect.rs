//! What a waiting command slot expects, and what an answer does when it comes: each
//! answer is checked against the ledger (two implementations of the rules, cross-checked
//! on every command; a disagreement is a bug that ends the run), applied to the ledger
//! and the book, and turned into the slot's lines and trace events.
//!
//! Completion is a function of the answer and the parts it touches ([`Completion`]), not
//! of the whole session, so that it reads alone and nothing here depends on the commands.

use super::book::{verdict, Book};
use super::fatal::Fatal;
use super::ledger::Delivery;
use super::slots::Out;
use super::system::System;
use crate::ids::{Amount, NodeId, SnapshotId, TxnId};
use crate::output;
use crate::trace::TraceEvent;
use crate::wire::{AccountState, Money, TxReport, TxSpec, TxState};
use crate::wire::{ChannelMsg, GlobalSnapshot, Incomplete, ObserverReply, Report, TxOutcome};

/// What completes a waiting slot.
pub enum Expect {
    /// `Setup` (or an unanswered command's stand-in) answered `Ready`; the trace events
    /// were known when it was sent.
    Ready(Vec<TraceEvent>),
    /// A delivery the ledger predicted only in part.
    Deliver {
        from: NodeId,
        to: NodeId,
        predicted: Delivery,
        /// `Receive` prints it.
        print: bool,
        /// Whom the receiver's markers go to, if it records (for the trace).
        peers: Vec<NodeId>,
    },
    /// The observer began a snapshot at `node`.
    Begin { node: NodeId, snapshot: SnapshotId, peers: Vec<NodeId> },
    /// The observer gathers snapshots (`CollectState` on `line`).
    Collect { line: usize, text: String, ids: Vec<SnapshotId> },
    /// A commit step (a transaction's start, or a timeout); `nowait` prints STARTED.
    TxStep { spec: TxSpec, nowait: bool },
    /// A driven transfer's coordinator decided it.
    TxRun { spec: TxSpec },
    /// A node answered `Query`.
    Query,
    /// A node answered `Ended`.
    Ended,
    /// A node answered `Costs`.
    Costs,
    /// A node answered `Query` to say that it has run its earlier commands.
    Settled,
    /// A `Send` in live mode (its ERR_SEND is not predicted).
    LiveSend,
    /// A `Transfer` in live mode: answered at its decision, or at once with `nowait`.
    LiveTx { spec: TxSpec, nowait: bool },
    /// A node answered `Quiet`.
    Quiet,
    /// The snapshot of a live `Check` has begun.
    LiveBegun,
    /// The snapshot of a live `Check`, gathered.
    LiveCheck,
    /// The observer holds a restarted node's new link.
    Relinked,
}

/// A node's answer to `Query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queried {
    /// The node.
    pub node: NodeId,
    /// Its money.
    pub money: Money,
    /// Its named accounts, by name.
    pub accounts: Vec<AccountState>,
    /// The state of the transaction asked about, if one was.
    pub tx: Option<TxState>,
}

/// Replies that a command gathers (it sends its questions, waits for every answer, then
/// reads them here).
#[derive(Default)]
pub struct Answers {
    /// `Query`: each node's answer.
    pub queried: Vec<Queried>,
    /// `Query`: (transaction, node waiting on it).
    pub waiting: Vec<(TxnId, NodeId)>,
    /// `Ended`: per node, its ended transactions.
    pub ended: Vec<(NodeId, Vec<(TxnId, TxState)>)>,
    /// `Quiet`.
    pub quiet: Vec<(NodeId, Report)>,
}

/// What an answer may touch.
pub struct Completion<'a> {
    pub sys: &'a mut System,
    pub book: &'a mut Book,
    pub answers: &'a mut Answers,
    /// Live mode is on: the ledger follows no channel.
    pub live: bool,
    /// Trace events are built.
    pub tracing: bool,
    /// A line of the run was rejected, or a `Check` failed (exit status 1).
    pub rejected: &'a mut bool,
}

/// A node's answer to the command that `expect` waits for: the slot's output.
///
/// # Errors
/// The answer is not the one expected, or disagrees with the ledger: a bug.
pub fn on_report(
    cx: &mut Completion,
    node: NodeId,
    expect: Expect,
    report: Report,
) -> Result<Vec<Out>, Fatal> {
    let mut outs = Vec::new();
    match (expect, report) {
        (Expect::Ready(trace), Report::Ready(None)) => {
            outs.extend(trace.into_iter().map(Out::Trace))
        }
        (Expect::Ready(_), Report::Ready(Some(r))) => apply_tx_report(cx, node, *r, &mut outs),
        (expect, Report::Crashed(r, costs)) => crashed(cx, node, expect, *r, costs, &mut outs),
        (
            Expect::Deliver { from, to, predicted, print, peers },
            Report::Received { msg, recorded, tx },
        ) => {
            if msg != predicted.msg || recorded.is_some() != predicted.records {
                return Err(Fatal::Bug(format!(
                    "node {to} took {msg:?} (recorded: {recorded:?}) from {from}, but the \
                     ledger predicted {predicted:?}"
                )));
            }
            delivered(cx, (from, to), &msg, print, &mut outs);
            if let (Some(balance), ChannelMsg::Marker { snapshot }) = (recorded, &msg) {
                if cx.tracing {
                    outs.extend(
                        record_events(to, *snapshot, balance, &peers).into_iter().map(Out::Trace),
                    );
                }
            }
            if let Some(r) = tx {
                apply_tx_report(cx, to, *r, &mut outs);
            }
        }
        (Expect::TxStep { spec, nowait }, Report::TxStep(r)) => {
            tx_step(cx, node, &spec, nowait, *r, &mut outs)
        }
        (Expect::TxRun { spec }, Report::TxStep(r)) => tx_run(cx, node, &spec, *r)?,
        (Expect::Settled, Report::State { .. }) | (Expect::LiveSend, Report::Sent) => {}
        (Expect::LiveSend, Report::ErrSend) => outs.push(Out::Line(output::ERR_SEND.to_string())),
        (Expect::LiveTx { spec, nowait }, Report::TxStep(r)) => {
            outs.push(live_tx(cx, &spec, nowait, &r)?)
        }
        (Expect::Quiet, report @ Report::Quiet { .. }) => cx.answers.quiet.push((node, report)),
        (Expect::Query, Report::State { money, accounts, tx, waiting }) => {
            cx.answers.queried.push(Queried { node, money, accounts, tx });
            cx.answers.waiting.extend(waiting.into_iter().map(|t| (t, node)));
        }
        (Expect::Ended, Report::Ended(list)) => cx.answers.ended.push((node, list)),
        (Expect::Costs, Report::Costs(costs)) => cx.book.add_costs(costs),
        (_, report) => {
            return Err(Fatal::Bug(format!("node {node} answered {report:?} unexpectedly")))
        }
    }
    Ok(outs)
}

/// The node reached its armed crash point during the command `expect` waits for: what
/// the step did before it, and the node is gone.
fn crashed(
    cx: &mut Completion,
    node: NodeId,
    expect: Expect,
    r: TxReport,
    costs: [crate::wire::Cost; 3],
    outs: &mut Vec<Out>,
) {
    cx.book.add_costs(costs);
    if let Expect::Deliver { from, to, predicted, print, .. } = expect {
        delivered(cx, (from, to), &predicted.msg, print, outs);
    }
    apply_tx_report(cx, node, r, outs);
    outs.extend(node_died(cx.sys, cx.book, node, cx.tracing));
}

/// A delivery's line (`Receive` prints it) and trace event.
fn delivered(
    cx: &Completion,
    (from, to): (NodeId, NodeId),
    msg: &ChannelMsg,
    print: bool,
    outs: &mut Vec<Out>,
) {
    if print {
        outs.push(Out::Line(output::received(from, msg)));
    }
    if cx.tracing {
        outs.push(Out::Trace(TraceEvent::Deliver { from, to, msg: msg.clone() }));
    }
}

/// A commit step's report: into the ledger; `nowait`, the `STARTED` line (or the
/// decision, when the coordinator's own NO decided at once).
fn tx_step(
    cx: &mut Completion,
    node: NodeId,
    spec: &TxSpec,
    nowait: bool,
    r: TxReport,
    outs: &mut Vec<Out>,
) {
    let decided = r.decided.iter().find(|d| d.0 == spec.tx).map(|d| d.1);
    apply_tx_report(cx, node, r, outs);
    if nowait {
        outs.push(Out::Line(output::transfer_nowait(cx.book.txns.word(spec.tx), spec.tx, decided)));
    }
}

/// A driven transfer decided: its payments have moved for every later command (its
/// nodes finish it first), and the coordinator's money is what the ledger says.
fn tx_run(cx: &mut Completion, node: NodeId, spec: &TxSpec, r: TxReport) -> Result<(), Fatal> {
    let Some(&(tx, outcome)) = r.decided.iter().find(|d| d.0 == spec.tx) else {
        return Err(Fatal::Bug(format!("node {node} answered {} undecided", spec.tx)));
    };
    // The nodes finish it before their next command; a kill must wait for that.
    cx.book.txns.unsettled.extend(spec.participants());
    let ledger = &mut cx.sys.ledger;
    if outcome == TxOutcome::Committed {
        ledger.commit_driven(spec);
    }
    // At its decision the coordinator's own part is final, unless it is paid by a
    // commit (its money is on the way).
    let final_here = outcome != TxOutcome::Committed || spec.delta(node) <= 0;
    let predicted = ledger.holdings().money(node);
    if final_here && predicted != r.money {
        return Err(Fatal::Bug(format!(
            "after {tx} node {node} holds {:?}, the ledger says {predicted:?}",
            r.money
        )));
    }
    cx.book.txns.record_outcome(tx, outcome);
    Ok(())
}

/// A live `Transfer`'s answer: its decision, or `STARTED` with `nowait`.
fn live_tx(cx: &mut Completion, spec: &TxSpec, nowait: bool, r: &TxReport) -> Result<Out, Fatal> {
    let word = cx.book.txns.word(spec.tx);
    let decided = r.decided.iter().copied().find(|d| d.0 == spec.tx);
    if let Some((tx, outcome)) = decided {
        cx.book.txns.record_outcome(tx, outcome);
    }
    match (nowait, decided) {
        // A nowait transfer decided at once (a local NO) prints its decision.
        (_, Some((tx, outcome))) => Ok(Out::Line(output::transfer(word, tx, Some(outcome)))),
        (true, None) => Ok(Out::Line(output::transfer_started(word, spec.tx))),
        (false, None) => Err(Fatal::Bug(format!("the coordinator answered {} undecided", spec.tx))),
    }
}

/// A node's report of a commit step: into the ledger, the trace and the book.
pub fn apply_tx_report(cx: &mut Completion, node: NodeId, r: TxReport, outs: &mut Vec<Out>) {
    if !cx.live {
        // In live mode the ledger follows no channel.
        let held_before = cx.sys.ledger.held(node);
        cx.sys.ledger.apply_tx(node, &r.sent, r.money);
        if cx.tracing {
            trace_tx_report(cx, node, &r, held_before, outs);
        }
    }
    for &(tx, outcome) in &r.decided {
        cx.book.txns.record_outcome(tx, outcome);
    }
}

fn trace_tx_report(
    cx: &mut Completion,
    node: NodeId,
    r: &TxReport,
    held_before: Amount,
    outs: &mut Vec<Out>,
) {
    if held_before != r.money.held {
        outs.push(Out::Trace(TraceEvent::Held { node, amount: r.money.held }));
    }
    for &(tx, amount) in &r.dropped {
        if cx.book.txns.dropped.insert(tx) {
            outs.push(Out::Trace(TraceEvent::Drop { node, tx, amount }));
        }
    }
    for (to, m) in &r.sent {
        let msg = ChannelMsg::Commit(m.clone());
        outs.push(Out::Trace(TraceEvent::Send { from: node, to: *to, msg }));
    }
}

/// The observer's answer to the request `expect` waits for: the slot's output.
///
/// # Errors
/// The answer is not the one expected, or a gathered snapshot does not balance: a bug.
pub fn on_observer(
    cx: &mut Completion,
    expect: Expect,
    reply: ObserverReply,
) -> Result<Vec<Out>, Fatal> {
    let mut outs = Vec::new();
    match (expect, reply) {
        (Expect::Relinked, ObserverReply::Relinked) => {}
        (Expect::LiveBegun, ObserverReply::Started { .. }) => {}
        (Expect::LiveCheck, ObserverReply::Collected(snaps)) => outs.push(live_check(cx, &snaps)),
        (Expect::Begin { node, snapshot, peers }, ObserverReply::Started { balance }) => {
            outs.push(Out::Line(output::started(node)));
            if cx.tracing {
                outs.extend(
                    record_events(node, snapshot, balance, &peers).into_iter().map(Out::Trace),
                );
            }
        }
        (Expect::Collect { ids, .. }, ObserverReply::Collected(snaps)) => {
            gathered(cx, &ids, snaps, &mut outs)?
        }
        (Expect::Collect { line, text, .. }, ObserverReply::NotComplete(list)) => {
            outs.push(Out::Error(output::rejected(line, &text, not_complete(&list))));
            *cx.rejected = true;
        }
        (_, reply) => {
            return Err(Fatal::Bug(format!("the observer answered {reply:?} unexpectedly")))
        }
    }
    Ok(outs)
}

/// `CollectState` gathered `snaps`: each holds all the money its nodes created (short
/// of what a three-phase-commit split lost, which `Check` names), else a bug.
fn gathered(
    cx: &mut Completion,
    ids: &[SnapshotId],
    snaps: Vec<GlobalSnapshot>,
    outs: &mut Vec<Out>,
) -> Result<(), Fatal> {
    for s in &snaps {
        let created = cx.sys.ledger.created_in(s.snapshot);
        match s.total() {
            Some(h) if cx.book.txns.three_pc_ran && h < created => log::warn!(
                "master: snapshot {} holds {h} of the {created} its nodes created: a \
                 three-phase commit split lost the rest (Check names it)",
                s.snapshot
            ),
            held if held != Some(created) => {
                return Err(Fatal::Bug(format!(
                    "snapshot {} holds {held:?} but its nodes created {created}",
                    s.snapshot
                )))
            }
            _ => {}
        }
    }
    cx.book.snaps.since_collect.retain(|k| !ids.contains(k));
    if cx.tracing {
        outs.extend(snaps.iter().map(|s| Out::Trace(TraceEvent::Collect { snapshot: s.snapshot })));
    }
    cx.book.snaps.gathered = snaps;
    Ok(())
}

/// Why `CollectState` cannot gather: each snapshot's open channels (the first hundred:
/// a thousand nodes have a million channels).
fn not_complete(list: &[Incomplete]) -> String {
    const NAMED: usize = 100;
    let why: Vec<String> = list
        .iter()
        .map(|inc| {
            let mut chans: Vec<String> =
                inc.open.iter().take(NAMED).map(|(s, d)| format!("{s} -> {d}")).collect();
            if inc.open.len() > NAMED {
                chans.push(format!("and {} more", inc.open.len() - NAMED));
            }
            format!(
                "snapshot {} is not complete: channels still open: {}",
                inc.snapshot,
                chans.join(", ")
            )
        })
        .collect();
    why.join("; ")
}

/// A live `Check`'s snapshot, held against all money created.
fn live_check(cx: &mut Completion, snaps: &[GlobalSnapshot]) -> Out {
    let v = match snaps.first() {
        Some(s) => verdict(s.total().unwrap_or(Amount::MAX), cx.sys.ledger.created(), Vec::new()),
        None => output::Verdict::Failed(vec!["the snapshot was not gathered".into()]),
    };
    *cx.rejected |= matches!(v, output::Verdict::Failed(_));
    Out::Line(output::check(&v))
}

/// Bookkeeping for a node whose process is gone (killed, or dead at a crash point): the
/// snapshots it had recorded that can no longer be gathered, and its link's close
/// expected.
pub fn node_died(sys: &mut System, book: &mut Book, node: NodeId, tracing: bool) -> Vec<Out> {
    sys.kill_node(node);
    sys.expect_close(node);
    let lost = sys.ledger.crash(node);
    book.snaps.lose(node, &lost);
    if tracing {
        vec![Out::Trace(TraceEvent::Crash { node })]
    } else {
        Vec::new()
    }
}

/// The trace of a recording: the record, then a marker to every peer.
pub fn record_events(
    node: NodeId,
    snapshot: SnapshotId,
    balance: Amount,
    peers: &[NodeId],
) -> Vec<TraceEvent> {
    let mut v = vec![TraceEvent::Record { node, snapshot, balance }];
    let msg = ChannelMsg::Marker { snapshot };
    v.extend(peers.iter().map(|&to| TraceEvent::Send { from: node, to, msg: msg.clone() }));
    v
}
