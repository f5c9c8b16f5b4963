//! A session: the running system and what is printed. Commands give nodes and the
//! observer work through it ([`Session::ask`], [`Session::tell`]), each with a slot that
//! its answer completes (`expect`); the session waits for answers when a command needs
//! them ([`Session::wait_slot`], [`Session::barrier`]), checks each against the ledger,
//! and writes finished slots out in command order (`printer`).
//!
//! The commands themselves live in their families (`snapshots`, `txn`, `faults`,
//! `check`, `live`), which use this module; it knows nothing of them.

use super::book::Book;
use super::expect::{self, Answers, Completion, Expect, Queried};
use super::fatal::Fatal;
use super::load::Live;
use super::printer::{error_line, Printer};
use super::slots::{Out, Slots};
use super::system::System;
use crate::ids::{NodeId, TxnId};
use crate::output::{self, Arrow};
use crate::rng::Rng;
use crate::transport::Event;
use crate::wire::{Control, LoadStats, Message, ObserverReply, ObserverRequest, Peer, Report};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a node on another host may stay silent before the line waiting on it reports
/// it unreachable (SPEC chapter 10).
const UNREACHABLE: Duration = Duration::from_secs(10);

/// What a run is set up with, beyond its input.
pub struct Settings {
    /// How to draw channel arrows.
    pub arrow: Arrow,
    /// Where node logs are kept; `None` for unnamed temporary files.
    pub data_dir: Option<PathBuf>,
    /// The hosts the nodes run on (`--hosts`), or `None` for this machine.
    pub hosts: Option<crate::cluster::Hosts>,
    /// The open-files limit of every process of the run, and how many nodes fit in it.
    pub open_files: u64,
    pub max_nodes: u64,
}

/// How long the session waits, and for whom.
pub struct Watch {
    /// When an answer (or a load's progress) last came: the watchdog's start.
    heard: Instant,
    /// How long the master waits for any answer before it declares the run hung.
    watchdog: Duration,
    /// The line being run (for `error: line N: node <id> unreachable`).
    at_line: usize,
    /// Nodes on other hosts reported unreachable while this line waits on them.
    unreachable: BTreeSet<NodeId>,
}

impl Watch {
    /// A watch that gives up after `watchdog` of silence.
    pub fn new(watchdog: Duration) -> Watch {
        Watch { heard: Instant::now(), watchdog, at_line: 0, unreachable: BTreeSet::new() }
    }

    /// Something came: the watchdog starts over.
    fn heard(&mut self) {
        self.heard = Instant::now();
    }
}

/// The running system and what is printed.
pub struct Session {
    /// The system, between `StartMaster` and `KillAll`.
    pub sys: Option<System>,
    slots: Slots<Expect>,
    pub printer: Printer,
    pub book: Book,
    /// Live mode's state, when it is on.
    pub live: Option<Live>,
    pub answers: Answers,
    watch: Watch,
    pub settings: Settings,
    pub rng: Rng,
    /// A line was rejected or a `Check` failed: the exit status is 1.
    pub rejected: bool,
}

impl Session {
    /// A session with no system yet.
    pub fn new(printer: Printer, settings: Settings, seed: u64, watchdog: Duration) -> Session {
        Session {
            sys: None,
            slots: Slots::default(),
            printer,
            book: Book::default(),
            live: None,
            answers: Answers::default(),
            watch: Watch::new(watchdog),
            settings,
            rng: Rng::new(seed),
            rejected: false,
        }
    }

    /// The running system.
    ///
    /// # Panics
    /// If none runs: the caller checked.
    pub fn sys(&mut self) -> &mut System {
        self.sys.as_mut().expect("checked that a system runs")
    }

    /// Whether live mode is on.
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Whether trace events are built.
    pub fn tracing(&self) -> bool {
        self.printer.tracing(self.is_live())
    }

    /// Line `n` starts running.
    pub fn at_line(&mut self, n: usize) {
        self.watch.at_line = n;
        self.watch.unreachable.clear();
    }

    /// A command's output, known now.
    pub fn push_done(&mut self, outs: Vec<Out>, rejected: bool) {
        self.rejected |= rejected;
        self.slots.push_done(outs);
    }

    /// Trace events, in their place among the command's output.
    pub fn trace(&mut self, events: Vec<crate::trace::TraceEvent>) {
        if self.tracing() && !events.is_empty() {
            self.push_done(events.into_iter().map(Out::Trace).collect(), false);
        }
    }

    /// Rejects line `line` (`text`) for `why`: nothing changes, the run goes on.
    pub fn reject(&mut self, line: usize, text: &str, why: impl std::fmt::Display) {
        self.push_done(vec![Out::Error(output::rejected(line, text, why))], true);
    }

    /// Gives `node` a command whose answer completes a slot expecting `e`.
    pub fn ask(&mut self, node: NodeId, cmd: Control, e: Expect) -> Result<u64, Fatal> {
        let slot = self.slots.push_await(e);
        self.sys().command(node, cmd, slot)?;
        Ok(slot)
    }

    /// Gives `node` a command it answers only to disagree with a prediction.
    pub fn tell(&mut self, node: NodeId, cmd: Control) -> Result<(), Fatal> {
        self.sys().tell(node, cmd)
    }

    /// Asks the observer; its answer completes a slot expecting `e`.
    pub fn observe(&mut self, req: ObserverRequest, e: Expect) -> Result<u64, Fatal> {
        let slot = self.slots.push_await(e);
        self.sys().observe(req, slot)?;
        Ok(slot)
    }

    /// Asks `nodes` for their balance, held money and (if given) the state of `tx`, after
    /// every earlier command; returns the answers by node (and keeps what they wait on in
    /// `answers.waiting`).
    pub fn query(&mut self, nodes: &[NodeId], tx: Option<TxnId>) -> Result<Vec<Queried>, Fatal> {
        self.answers.queried.clear();
        self.answers.waiting.clear();
        for &n in nodes {
            self.ask(n, Control::Query { tx }, Expect::Query)?;
        }
        self.barrier()?;
        let mut got = std::mem::take(&mut self.answers.queried);
        got.sort_by_key(|q| q.node);
        Ok(got)
    }

    /// Waits until slot `id` has its answer.
    pub fn wait_slot(&mut self, id: u64) -> Result<(), Fatal> {
        while self.slots.waits(id) {
            self.wait_one()?;
        }
        Ok(())
    }

    /// Waits until every command given has run (a node that was given commands it does
    /// not answer is asked something it does), every answer has come and every line is out.
    pub fn barrier(&mut self) -> Result<(), Fatal> {
        let unanswered = self.sys.as_mut().map_or(Vec::new(), |s| s.owed.take_unanswered());
        for n in unanswered {
            if !self.sys().ledger.is_down(n) {
                self.ask(n, Control::Query { tx: None }, Expect::Settled)?;
            }
        }
        while self.sys.as_ref().is_some_and(|s| s.owed.any()) {
            self.wait_one()?;
        }
        self.emit()
    }

    /// Waits for every earlier answer, and until the nodes of driven transfers (which
    /// answer at the decision) are done with them: before a process is killed.
    pub fn settle(&mut self) -> Result<(), Fatal> {
        for n in std::mem::take(&mut self.book.txns.unsettled) {
            if self.sys.as_ref().is_some_and(|s| s.ledger.runs(n)) {
                self.ask(n, Control::Query { tx: None }, Expect::Settled)?;
            }
        }
        self.barrier()
    }

    /// Blocks for at least one event, then takes every event already there.
    pub fn wait_one(&mut self) -> Result<(), Fatal> {
        // Only answers (and a load's progress while no answer is owed) show that the
        // processes are not stuck: a load's progress must not hide a command that hangs.
        let mut left = self.watch.watchdog.saturating_sub(self.watch.heard.elapsed());
        let on_hosts = self.sys().on_hosts();
        if on_hosts {
            // SPEC chapter 10: a node on another host silent for 10 s is reported.
            left = left.min(UNREACHABLE.saturating_sub(self.watch.heard.elapsed()));
        }
        match self.sys().next_event(left)? {
            Some(ev) => self.on_event(ev)?,
            None if on_hosts && self.report_unreachable() => {}
            None => {
                let owed = self.sys().owed.describe();
                return Err(Fatal::Hung { secs: self.watch.watchdog.as_secs(), owed });
            }
        }
        self.drain_events()?;
        self.emit()
    }

    /// After 10 s of silence on several hosts: the nodes this line waits on get `error:
    /// line N: node <id> unreachable` (on stderr; the exit status becomes 1), once per
    /// line, and the master goes on waiting: once a node is back, its answer comes and
    /// the run goes on, with the stdout it would have had. False when nothing new is to
    /// be reported (then the watchdog decides).
    fn report_unreachable(&mut self) -> bool {
        if self.watch.heard.elapsed() < UNREACHABLE {
            return true; // the 10 s are not over: wait again
        }
        let owing: Vec<NodeId> = self.sys().owed.owing();
        let new: Vec<NodeId> =
            owing.into_iter().filter(|n| !self.watch.unreachable.contains(n)).collect();
        if new.is_empty() {
            return false;
        }
        for n in new {
            let bar = self.live.as_ref().and_then(Live::bar);
            error_line(&output::unreachable(self.watch.at_line, n), bar);
            self.rejected = true;
            self.watch.unreachable.insert(n);
        }
        // The watchdog starts over: a cut-off host may take a while to come back.
        self.watch.heard();
        true
    }

    /// Takes every event already there.
    pub fn drain_events(&mut self) -> Result<(), Fatal> {
        while let Some(ev) = self.sys.as_ref().and_then(|s| s.inbox.try_recv().ok()) {
            self.on_event(ev)?;
        }
        Ok(())
    }

    fn on_event(&mut self, ev: Event) -> Result<(), Fatal> {
        match ev {
            Event::Connected(link) => {
                log::warn!("master: unexpected connection from {}; dropped", link.peer())
            }
            Event::Frames { peer, msgs } => {
                for msg in msgs {
                    self.on_message(peer, msg)?;
                }
            }
            Event::Closed { peer: Peer::Node(n), .. } if self.sys().closed(n) => {}
            Event::Closed { peer, why } => {
                let why = why.map_or(String::new(), |w| format!(" ({w})"));
                return Err(Fatal::Gone(format!("{peer} exited unexpectedly{why}")));
            }
        }
        Ok(())
    }

    fn on_message(&mut self, peer: Peer, msg: Message) -> Result<(), Fatal> {
        match (peer, msg) {
            (Peer::Node(id), Message::Report { seq, report }) => self.on_report(id, seq, report),
            (Peer::Node(id), Message::LoadProgress(s)) => {
                self.on_load(id, *s, false);
                Ok(())
            }
            (Peer::Node(id), Message::LoadDone(s)) => {
                self.on_load(id, *s, true);
                Ok(())
            }
            (Peer::Node(_), Message::Decided { tx, outcome }) => {
                self.book.txns.record_outcome(tx, outcome);
                Ok(())
            }
            (Peer::Observer, Message::ObserverReply(r)) => self.on_observer(r),
            (peer, other) => {
                log::warn!("master: unexpected {other:?} from {peer}; ignored");
                Ok(())
            }
        }
    }

    /// The parts an answer may touch.
    fn completion(&mut self) -> Completion<'_> {
        let (live, tracing) = (self.is_live(), self.tracing());
        Completion {
            sys: self.sys.as_mut().expect("answers come from a running system"),
            book: &mut self.book,
            answers: &mut self.answers,
            live,
            tracing,
            rejected: &mut self.rejected,
        }
    }

    fn on_report(&mut self, node: NodeId, seq: u64, report: Report) -> Result<(), Fatal> {
        // An answer to a command whose outcome the ledger predicted: the node disagrees,
        // so one of the two implementations of the rules is wrong.
        let Some(slot) = self.sys().owed.answered(node, seq) else {
            return Err(Fatal::Bug(format!(
                "node {node} answered {report:?} to its command {seq}, whose outcome the \
                 master's ledger predicted otherwise"
            )));
        };
        let e = self.take_slot(slot)?;
        let outs = expect::on_report(&mut self.completion(), node, e, report)?;
        self.fill(slot, outs);
        Ok(())
    }

    fn on_observer(&mut self, reply: ObserverReply) -> Result<(), Fatal> {
        let slot =
            self.sys().owed.observer_answered().ok_or_else(|| {
                Fatal::Bug("the observer answered a request it was not given".into())
            })?;
        let e = self.take_slot(slot)?;
        let outs = expect::on_observer(&mut self.completion(), e, reply)?;
        self.fill(slot, outs);
        Ok(())
    }

    fn take_slot(&mut self, id: u64) -> Result<Expect, Fatal> {
        self.slots.take(id).ok_or_else(|| {
            Fatal::Bug(format!("an answer for command slot {id}, which waits for none"))
        })
    }

    fn fill(&mut self, id: u64, outs: Vec<Out>) {
        self.watch.heard();
        self.slots.fill(id, outs);
    }

    /// A node's load progress (`done` once its share is over).
    fn on_load(&mut self, node: NodeId, stats: LoadStats, done: bool) {
        if done || !self.sys.as_ref().is_some_and(|s| s.owed.any()) {
            self.watch.heard();
        }
        let Some(run) = self.live.as_mut().and_then(|l| l.load.as_mut()) else {
            log::warn!("master: load report from node {node} with no load running; ignored");
            return;
        };
        let (done_ops, count) = run.progress(node, stats, done);
        if let Some(w) = self.printer.web.as_mut() {
            w.progress(done_ops, count);
        }
    }

    /// Bookkeeping for a node whose process is gone: see [`expect::node_died`].
    pub fn node_died(&mut self, node: NodeId) -> Vec<Out> {
        let tracing = self.tracing();
        let sys = self.sys.as_mut().expect("a node dies in a running system");
        expect::node_died(sys, &mut self.book, node, tracing)
    }

    /// Writes out every finished slot at the front of the queue.
    pub fn emit(&mut self) -> Result<(), Fatal> {
        let outs = self.slots.ready();
        let bar = self.live.as_ref().and_then(Live::bar);
        self.printer.write(outs, bar)
    }

    /// Makes what was written reach stdout.
    pub fn flush(&mut self) -> Result<(), Fatal> {
        self.printer.flush()
    }
}
