//! Walks the command lines and runs each command, keeping many in flight.
//!
//! Every command gets a *slot* in a queue. A slot is either done (its stdout lines,
//! stderr errors and trace events are known) or waiting for one answer from a node or
//! the observer. Answers fill slots in any order; lines leave the front of the queue in
//! command order. The ledger predicts every answer of the snapshot commands (which
//! Sends are refused, what each Receive takes, who records), so those are sent at once;
//! a two-phase-commit step is not predicted, so the master waits for its report before
//! going on; `CollectState`, `PrintSnapshot`, `KillAll` and the queries wait for every
//! answer first (barriers). Every answer is checked against the ledger.

mod live;
mod txn;

use super::ledger::{ChannelId, Delivery};
use super::system::System;
use super::Fatal;
use crate::command::{help, parse_line, Command};
use crate::ids::{Amount, NodeId, SnapshotId, TxnId};
use crate::output::{self, Arrow};
use crate::rng::Rng;
use crate::trace::TraceEvent;
use crate::transport::Event;
use crate::wire::{AbortReason, TxOutcome, TxReport, TxSpec};
use crate::wire::{
    ChannelMsg, Control, GlobalSnapshot, Message, ObserverReply, ObserverRequest, Peer, Report,
};
use live::Live;
use rustc_hash::FxHashMap as HashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Stdout, Write};
use std::path::PathBuf;
use std::time::Duration;
use txn::Txns;

/// Flush the links every this many commands so that nodes work while the master reads.
const FLUSH_EVERY: usize = 512;
/// `ReceiveAll` flushes every this many deliveries: its commands are all predicted, so
/// larger batches cost fewer writes and wake-ups (a snapshot of 256 nodes drains 65,280
/// markers) while the nodes still work as the master goes on.
const DRAIN_FLUSH_EVERY: usize = 4096;

/// Where the command lines come from.
pub enum Input {
    /// A whole file, already read.
    Text(String),
    /// Standard input, read line by line as it comes; `interactive` when it is a terminal.
    Stdin {
        /// Prompt after every line.
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
    /// How long the master waits for any answer before it declares the run hung.
    pub watchdog: Duration,
}

/// Runs every command line. Returns the exit status: 0 when every line ran, 1 when a
/// line was rejected or the run failed.
pub fn run(cfg: Config) -> i32 {
    let trace = match cfg.trace.as_ref().map(|p| (p, File::create(p))) {
        None => None,
        Some((_, Ok(f))) => Some(BufWriter::new(f)),
        Some((path, Err(e))) => {
            eprintln!("error: cannot create the trace file {}: {e}", path.display());
            return 2;
        }
    };
    let open_files = crate::process::raise_open_files_limit();
    let mut m = Master {
        arrow: cfg.arrow,
        rng: Rng::new(cfg.seed),
        stdout: BufWriter::with_capacity(64 * 1024, io::stdout()),
        trace,
        system: None,
        slots: VecDeque::new(),
        first_slot: 0,
        rejected: false,
        gathered: Vec::new(),
        since_collect: Vec::new(),
        data_dir: cfg.data_dir,
        txns: Txns::default(),
        queried: Vec::new(),
        lost_snapshots: Vec::new(),
        unsettled: BTreeSet::new(),
        waiting: Vec::new(),
        live: None,
        loads: 0,
        quiet: Vec::new(),
        heard: std::time::Instant::now(),
        watchdog: cfg.watchdog,
        open_files,
        max_nodes: crate::process::nodes_that_fit(open_files),
    };
    let result = m.walk(cfg.input);
    let result = result.and_then(|()| m.finish());
    drop(m.system.take());
    let _ = m.stdout.flush();
    if let Some(t) = m.trace.as_mut() {
        let _ = t.flush();
    }
    match result {
        Ok(()) => i32::from(m.rejected),
        Err(Fatal(why)) => {
            eprintln!("error: {why}");
            1
        }
    }
}

enum Out {
    Line(String),
    Error(String),
    Trace(TraceEvent),
}

/// What completes a waiting slot.
enum Expect {
    /// `Setup` answered `Ready`; the trace events were known when sent.
    Ready(Vec<TraceEvent>),
    Deliver {
        from: NodeId,
        to: NodeId,
        predicted: Delivery,
        print: bool,
        peers: Vec<NodeId>,
    },
    Begin {
        node: NodeId,
        snapshot: SnapshotId,
        peers: Vec<NodeId>,
    },
    Collect {
        line: usize,
        text: String,
        ids: Vec<SnapshotId>,
    },
    /// A two-phase-commit step (a transfer's start, or a timeout); `nowait` prints STARTED.
    TxStep {
        spec: TxSpec,
        nowait: bool,
    },
    /// A driven transfer's coordinator decided it (its nodes finish it before their next
    /// command).
    TxRun {
        spec: TxSpec,
    },
    /// A node answered `Query`.
    Query,
    /// A node answered `Query` to say that it is done with its driven transfers.
    Settled,
    /// A `Send` in live mode (its ERR_SEND is not predicted).
    LiveSend,
    /// A `Transfer` in live mode: answered at its decision, or at once with `nowait`.
    LiveTx {
        spec: TxSpec,
        nowait: bool,
    },
    /// A node answered `Quiet`.
    Quiet,
    /// The snapshot of a live `Check` has begun.
    LiveBegun,
    /// The snapshot of a live `Check`, gathered.
    LiveCheck,
    /// The observer holds a restarted node's new link.
    Relinked,
}

enum Slot {
    Done(Vec<Out>),
    Await(Expect),
}

struct Master {
    arrow: Arrow,
    rng: Rng,
    stdout: BufWriter<Stdout>,
    trace: Option<BufWriter<File>>,
    system: Option<System>,
    slots: VecDeque<Slot>,
    /// The id of `slots[0]`.
    first_slot: u64,
    rejected: bool,
    /// What the last successful `CollectState` gathered.
    gathered: Vec<GlobalSnapshot>,
    /// Snapshots begun since the last successful `CollectState`.
    since_collect: Vec<SnapshotId>,
    data_dir: Option<PathBuf>,
    txns: Txns,
    /// Answers to `Query`: (node, balance, held, transaction state).
    queried: Vec<(NodeId, Amount, Amount, Option<String>)>,
    /// Snapshots that can never complete (a member crashed after recording), to report.
    lost_snapshots: Vec<(SnapshotId, NodeId)>,
    /// From answers to `Query`: (transaction, node waiting on it).
    waiting: Vec<(TxnId, NodeId)>,
    /// Nodes of driven transfers that answered at the decision and may still be
    /// finishing them (see `settle`).
    unsettled: BTreeSet<NodeId>,
    /// Live mode's state, when it is on.
    live: Option<Live>,
    /// Loads started in this run (each numbers its transactions apart).
    loads: u32,
    /// Answers to `Quiet`.
    quiet: Vec<(NodeId, Report)>,
    /// When an answer (or a load's progress) last came: the watchdog's start.
    heard: std::time::Instant,
    /// How long the master waits for any answer before it declares the run hung.
    watchdog: Duration,
    /// The open-files limit of every process of the run, and how many nodes fit in it.
    open_files: u64,
    max_nodes: u64,
}

fn record_events(
    node: NodeId,
    snapshot: SnapshotId,
    balance: Amount,
    peers: &[NodeId],
) -> Vec<TraceEvent> {
    let mut v = vec![TraceEvent::Record { node, snapshot, balance }];
    let msg = ChannelMsg::Marker { snapshot };
    v.extend(peers.iter().map(|&to| TraceEvent::Send { from: node, to, msg }));
    v
}

impl Master {
    fn walk(&mut self, input: Input) -> Result<(), Fatal> {
        match input {
            Input::Text(text) => {
                for (i, line) in text.lines().enumerate() {
                    self.line(i + 1, line)?;
                    if (i + 1) % FLUSH_EVERY == 0 {
                        if let Some(sys) = self.system.as_mut() {
                            sys.flush_all()?;
                            sys.poll_now()?;
                        }
                    }
                }
            }
            Input::Stdin { interactive } => {
                if interactive {
                    if let Some(prompt) = super::prompt::Prompt::new() {
                        return self.walk_prompt(prompt);
                    }
                }
                use std::io::BufRead;
                let mut stdin = std::io::BufReader::new(std::io::stdin().lock());
                let mut bytes = Vec::new();
                let mut n = 0;
                loop {
                    if !stdin.buffer().contains(&b'\n') {
                        // No whole line read yet: finish and show what was asked so far.
                        self.barrier()?;
                        self.stdout.flush().map_err(stdout_gone)?;
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
                    for end in [b'\n', b'\r'] {
                        if bytes.last() == Some(&end) {
                            bytes.pop();
                        }
                    }
                    n += 1;
                    if n == 1 && bytes.starts_with("\u{feff}".as_bytes()) {
                        bytes.drain(..3); // a byte-order mark is not part of the line
                    }
                    // As for a file: a stray non-UTF-8 byte spoils its line only.
                    self.line(n, &String::from_utf8_lossy(&bytes))?;
                }
                if interactive {
                    eprintln!();
                }
            }
        }
        Ok(())
    }

    /// Runs the lines typed at the terminal's prompt.
    fn walk_prompt(&mut self, mut prompt: super::prompt::Prompt) -> Result<(), Fatal> {
        let mut n = 0;
        loop {
            // What was asked so far is finished and shown before the next prompt.
            self.barrier()?;
            self.stdout.flush().map_err(stdout_gone)?;
            let Some(line) = prompt.read() else { return Ok(()) };
            n += 1;
            self.line(n, &line)?;
        }
    }

    fn finish(&mut self) -> Result<(), Fatal> {
        if self.system.is_some() {
            self.wait_load()?;
        }
        self.settle()?;
        self.system = None;
        self.emit_ready()
    }

    fn line(&mut self, n: usize, text: &str) -> Result<(), Fatal> {
        match parse_line(n, text) {
            Ok(None) => {}
            Ok(Some(cmd)) => self.execute(n, text.trim(), cmd)?,
            Err(e) => self.push_done(vec![Out::Error(format!("error: {e}"))], true),
        }
        self.drain_events()?;
        self.emit_ready()
    }

    fn reject(&mut self, line: usize, text: &str, why: impl std::fmt::Display) {
        let text = output::echo(text);
        self.push_done(vec![Out::Error(format!("error: line {line}: {text}: {why}"))], true);
    }

    /// Whether every node in `ids` exists; if not, the line is rejected naming the first
    /// unknown one.
    fn known(&mut self, line: usize, text: &str, ids: &[NodeId]) -> bool {
        let ledger = &self.system.as_ref().expect("a system runs").ledger;
        match ids.iter().copied().find(|&id| !ledger.has_node(id)) {
            Some(id) => {
                self.reject(line, text, format!("unknown node {id}"));
                false
            }
            None => true,
        }
    }

    fn push_done(&mut self, outs: Vec<Out>, rejected: bool) {
        self.rejected |= rejected;
        self.slots.push_back(Slot::Done(outs));
    }

    /// Queues a waiting slot and returns its id.
    fn push_await(&mut self, e: Expect) -> u64 {
        self.slots.push_back(Slot::Await(e));
        self.first_slot + self.slots.len() as u64 - 1
    }

    fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    fn sys(&mut self) -> &mut System {
        self.system.as_mut().expect("checked that a system runs")
    }

    fn execute(&mut self, line: usize, text: &str, cmd: Command) -> Result<(), Fatal> {
        match cmd {
            Command::Help => {
                eprintln!("{}", help());
                return Ok(());
            }
            Command::StartMaster => {
                if self.system.is_some() {
                    self.reject(line, text, "a system is already running (KillAll ends it)");
                } else {
                    self.start_master()?;
                }
                return Ok(());
            }
            _ if self.system.is_none() => {
                self.reject(line, text, "no system is running (StartMaster starts one)");
                return Ok(());
            }
            _ => {}
        }
        if self.is_live() {
            return self.execute_live(line, text, cmd);
        }
        self.execute_scripted(line, text, cmd)
    }

    /// A command in scripted mode (and those that work alike in live mode).
    fn execute_scripted(&mut self, line: usize, text: &str, cmd: Command) -> Result<(), Fatal> {
        match cmd {
            Command::Live { on: true } => self.live_on(line, text)?,
            Command::Live { on: false } => self.reject(line, text, "live mode is not on"),
            Command::Load { .. } => {
                self.reject(line, text, "Load runs in live mode only (Live on first)")
            }
            Command::Wait => {} // no load runs outside live mode
            Command::CreateNode { id, amount } => {
                let ledger = &self.sys().ledger;
                if ledger.has_node(id) {
                    self.reject(line, text, format!("node {id} already exists"));
                } else if ledger.created().checked_add(amount).is_none() {
                    let total = ledger.created();
                    self.reject(
                        line,
                        text,
                        format!(
                            "the total money ({total} + {amount}) would exceed {}",
                            Amount::MAX
                        ),
                    );
                } else if ledger.nodes().count() as u64 >= self.max_nodes {
                    let (max, limit) = (self.max_nodes, self.open_files);
                    self.reject(
                        line,
                        text,
                        format!(
                            "{max} nodes is the most this run can hold: each process may open \
                             {limit} files (ulimit -n), and a node takes 3 in the master; \
                             raise the limit to run more"
                        ),
                    );
                } else {
                    self.create_node(id, amount)?;
                }
            }
            Command::Send { from, .. } if self.is_down(from) => {
                self.reject(line, text, format!("node {from} is down"))
            }
            Command::Receive { to, .. } if self.is_down(to) => {
                self.reject(line, text, format!("node {to} is down"))
            }
            Command::BeginSnapshot { node } if self.is_down(node) => {
                self.reject(line, text, format!("node {node} is down"))
            }
            Command::Crash { node } | Command::CrashAt { node, .. } if self.is_down(node) => {
                self.reject(line, text, format!("node {node} is already down"))
            }
            Command::Crash { node } => {
                if self.known(line, text, &[node]) {
                    self.txns.faults = true;
                    self.crash(node)?;
                }
            }
            Command::CrashAt { node, point } => {
                if self.known(line, text, &[node]) {
                    self.txns.faults = true;
                    let slot = self.push_await(Expect::Ready(Vec::new()));
                    self.sys().command(node, Control::ArmCrash { point }, slot)?;
                }
            }
            Command::Hold { from, to } | Command::Release { from, to } => {
                let hold = matches!(cmd, Command::Hold { .. });
                self.txns.faults |= hold;
                if self.known(line, text, &[from, to]) && !self.sys().ledger.hold((from, to), hold)
                {
                    let state = if hold { "already held" } else { "not held" };
                    self.reject(line, text, format!("channel {from} -> {to} is {state}"));
                }
            }
            Command::Lose { from, to } => {
                if self.known(line, text, &[from, to]) {
                    self.txns.faults = true;
                    self.lose(line, text, from, to)?;
                }
            }
            Command::Restart { node } => {
                if self.known(line, text, &[node]) {
                    self.txns.faults = true;
                    self.restart(node)?;
                }
            }
            Command::Send { from, to, amount } => {
                if self.known(line, text, &[from, to]) {
                    // Predicted whole: the node answers only if it did otherwise.
                    let ok = self.sys().ledger.send(from, to, amount);
                    let mut outs = Vec::new();
                    if !ok {
                        outs.push(Out::Line(output::ERR_SEND.to_string()));
                    }
                    if self.tracing() {
                        outs.push(Out::Trace(if ok {
                            TraceEvent::Send { from, to, msg: ChannelMsg::Transfer { amount } }
                        } else {
                            TraceEvent::ErrSend { from, to, amount }
                        }));
                    }
                    self.push_done(outs, false);
                    self.sys().tell(from, Control::Send { to, amount, predicted: Some(ok) })?;
                }
            }
            Command::Receive { to, from } => {
                let ids: Vec<NodeId> = std::iter::once(to).chain(from).collect();
                if self.known(line, text, &ids) {
                    self.receive(line, text, to, from)?;
                }
            }
            Command::ReceiveAll => self.receive_all()?,
            Command::BeginSnapshot { node } => {
                if self.known(line, text, &[node]) {
                    self.begin_snapshot(node)?;
                }
            }
            Command::CollectState => self.collect_state(line, text)?,
            Command::PrintSnapshot => {
                self.barrier()?;
                let arrow = self.arrow;
                let outs = self
                    .gathered
                    .iter()
                    .map(|s| Out::Line(output::snapshot_block(s, arrow)))
                    .collect();
                self.push_done(outs, false);
            }
            Command::KillAll => {
                self.settle()?;
                self.system = None;
                self.live = None;
            }
            Command::Transfer { from, to, amount, via, nowait } => {
                let ids: Vec<NodeId> = [from, to].into_iter().chain(via).collect();
                if self.known(line, text, &ids) {
                    self.transfer(from, to, amount, via, nowait)?;
                }
            }
            Command::Balances => {
                let all: Vec<NodeId> = self.sys().ledger.nodes().collect();
                let up: Vec<NodeId> = all.iter().copied().filter(|&n| !self.is_down(n)).collect();
                let mut got = self.query(&up, None)?.into_iter().peekable();
                let mut outs = Vec::new();
                for n in all {
                    match got.peek() {
                        Some(q) if q.0 == n => {
                            let (n, balance, held, _) = got.next().expect("peeked");
                            outs.push(Out::Line(output::balance(n, balance, held)));
                        }
                        _ => outs.push(Out::Line(format!("node {n} = down"))),
                    }
                }
                self.push_done(outs, false);
            }
            Command::TxStatus { tx } => match self.txns.specs.get(&tx).copied() {
                None => self.reject(line, text, format!("unknown transaction {tx}")),
                Some(spec) => self.tx_status(spec)?,
            },
            Command::Check => self.check()?,
            Command::Stats => {
                self.barrier()?;
                let t = &self.txns;
                let mut lines = vec![format!("commits {}", t.commits)];
                for r in AbortReason::ALL {
                    let n = t.aborts.get(r.as_str()).copied().unwrap_or(0);
                    lines.push(format!("aborts {} {n}", r.as_str()));
                }
                let undecided = t.specs.len() - t.outcomes.len();
                lines.push(format!("undecided {undecided}"));
                lines.push(format!("in-doubt {}", t.in_doubt));
                lines.push(format!("retransmissions {}", t.retransmissions));
                self.push_done(lines.into_iter().map(Out::Line).collect(), false);
            }
            Command::StartMaster | Command::Help => unreachable!("handled above"),
        }
        Ok(())
    }

    fn start_master(&mut self) -> Result<(), Fatal> {
        self.gathered.clear();
        self.since_collect.clear();
        self.txns = Txns::default();
        self.lost_snapshots.clear();
        self.system = Some(System::start(self.data_dir.clone())?);
        if self.tracing() {
            self.push_done(vec![Out::Trace(TraceEvent::Start)], false);
        }
        Ok(())
    }

    fn create_node(&mut self, id: NodeId, amount: Amount) -> Result<(), Fatal> {
        self.sys().spawn_node(id, amount)?;
        let tracing = self.tracing();
        let sys = self.sys();
        let peers: Vec<NodeId> = sys.ledger.nodes().collect();
        let join = sys.ledger.add_node(id, amount);
        let mut trace = Vec::new();
        if tracing {
            trace.push(TraceEvent::Create { node: id, balance: amount });
            for &k in &join {
                trace.extend(record_events(id, k, amount, &peers));
            }
        }
        let mut adds = Vec::new();
        for &x in &peers {
            let mut t = Vec::new();
            if tracing {
                let msgs = join.iter().filter(|&&k| sys.ledger.has_recorded(x, k));
                t.extend(msgs.map(|&k| TraceEvent::Send {
                    from: x,
                    to: id,
                    msg: ChannelMsg::Marker { snapshot: k },
                }));
            }
            adds.push((x, t));
        }
        let slot = self.push_await(Expect::Ready(trace));
        let down = self.sys().ledger.down();
        let setup =
            Control::Setup { peers, join: join.clone(), down, resend: Vec::new(), live: false };
        self.sys().command(id, setup, slot)?;
        for (x, t) in adds {
            if self.sys().ledger.is_down(x) {
                continue; // its restart's Setup lists every node
            }
            if !t.is_empty() {
                self.push_done(t.into_iter().map(Out::Trace).collect(), false);
            }
            self.sys().tell(x, Control::AddPeer { peer: id, join: join.clone() })?;
        }
        Ok(())
    }

    fn receive(
        &mut self,
        line: usize,
        text: &str,
        to: NodeId,
        from: Option<NodeId>,
    ) -> Result<(), Fatal> {
        let from = match from {
            Some(from) => from,
            None => {
                let sources = self.sys().ledger.incoming(to);
                if sources.is_empty() {
                    self.reject(line, text, format!("no message is waiting for node {to}"));
                    return Ok(());
                }
                sources[self.rng.below(sources.len())]
            }
        };
        if self.sys().ledger.head((from, to)).is_none() {
            self.reject(line, text, format!("channel {from} -> {to} is empty"));
            return Ok(());
        }
        if self.sys().ledger.is_held((from, to)) {
            self.reject(line, text, format!("channel {from} -> {to} is held (Release it first)"));
            return Ok(());
        }
        if self.sys().ledger.is_lost((from, to)) {
            // Its messages died with the receiver's process; only the sender has them.
            let why = format!(
                "channel {from} -> {to} waits for node {from} to send its messages again, \
                 and node {from} is down"
            );
            self.reject(line, text, why);
            return Ok(());
        }
        self.deliver((from, to), true)?;
        Ok(())
    }

    /// Tells the channel's destination to take its head, as the ledger predicts it. A
    /// two-phase-commit message's effects are not predicted: the master waits for the
    /// node's report and applies it to the ledger before going on.
    /// A Transfer or a marker that makes no recording is predicted whole: the node answers
    /// only if it took something else. A recording (its balance goes into the trace) and
    /// a two-phase-commit step are answered.
    fn deliver(&mut self, c: ChannelId, print: bool) -> Result<Delivery, Fatal> {
        let tracing = self.tracing();
        let sys = self.sys();
        let predicted = sys.ledger.deliver(c);
        let (from, to) = c;
        let tx = matches!(predicted.msg, ChannelMsg::Tx(_));
        if !tx && !predicted.records {
            let mut outs = Vec::new();
            if print {
                outs.push(Out::Line(output::received(from, &predicted.msg)));
            }
            if tracing {
                outs.push(Out::Trace(TraceEvent::Deliver { from, to, msg: predicted.msg }));
            }
            self.push_done(outs, false);
            let receive = Control::Receive { from, predicted: Some(predicted.msg) };
            self.sys().tell(to, receive)?;
            return Ok(predicted);
        }
        let peers = if tracing && predicted.records {
            sys.ledger.nodes().filter(|&x| x != to).collect()
        } else {
            Vec::new()
        };
        let slot = self.push_await(Expect::Deliver { from, to, predicted, print, peers });
        self.sys().command(to, Control::Receive { from, predicted: None }, slot)?;
        if tx {
            self.wait_slot(slot)?;
        }
        Ok(predicted)
    }

    /// `ReceiveAll`: random heads until every channel is empty; then, if transactions
    /// still wait (a message lost or held, a node down), their waiting sides time out
    /// (logical time) and whatever that sends is delivered in turn, until nothing moves.
    fn receive_all(&mut self) -> Result<(), Fatal> {
        for round in 0.. {
            if round > 100_000 {
                return Err(Fatal("bug: ReceiveAll did not settle".into()));
            }
            self.receive_all_random()?;
            let mut all: Vec<TxnId> = self.txns.specs.keys().copied().collect();
            if all.is_empty() {
                return Ok(());
            }
            all.sort();
            self.drive(&all)?;
            if self.sys().ledger.nonempty().is_empty() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn receive_all_random(&mut self) -> Result<(), Fatal> {
        let mut open = self.sys().ledger.nonempty();
        let mut pos: HashMap<ChannelId, usize> =
            open.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let mut steps = 0usize;
        while !open.is_empty() {
            let i = self.rng.below(open.len());
            let c = open[i];
            let d = self.deliver(c, false)?;
            if matches!(d.msg, ChannelMsg::Tx(_)) {
                // The step may have sent anything anywhere: take the channels afresh.
                open = self.sys().ledger.nonempty();
                pos = open.iter().enumerate().map(|(i, &c)| (c, i)).collect();
                continue;
            }
            if self.sys().ledger.is_empty(c) {
                pos.remove(&c);
                open.swap_remove(i);
                if let Some(&moved) = open.get(i) {
                    pos.insert(moved, i);
                }
            }
            if d.records {
                // The markers the delivery made its receiver send, into nodes that are up.
                let ledger = &self.sys().ledger;
                let fresh: Vec<ChannelId> = ledger
                    .nodes()
                    .filter(|&x| x != c.1 && !pos.contains_key(&(c.1, x)))
                    .map(|x| (c.1, x))
                    .filter(|nc| ledger.deliverable(nc))
                    .collect();
                for nc in fresh {
                    pos.insert(nc, open.len());
                    open.push(nc);
                }
            }
            steps += 1;
            if steps % DRAIN_FLUSH_EVERY == 0 {
                self.sys().flush_all()?;
                self.sys().poll_now()?;
                self.drain_events()?;
                self.emit_ready()?;
            }
        }
        Ok(())
    }

    /// Waits until slot `id` has its answer.
    fn wait_slot(&mut self, id: u64) -> Result<(), Fatal> {
        while id >= self.first_slot
            && matches!(self.slots.get((id - self.first_slot) as usize), Some(Slot::Await(_)))
        {
            self.wait_one()?;
        }
        Ok(())
    }

    /// `BeginSnapshot`. In live mode the nodes, not the ledger, follow its markers.
    fn begin_snapshot(&mut self, node: NodeId) -> Result<(), Fatal> {
        let (tracing, live) = (self.tracing(), self.is_live());
        let sys = self.sys();
        let snapshot = if live { sys.ledger.begin_live() } else { sys.ledger.begin(node) };
        let peers =
            if tracing { sys.ledger.nodes().filter(|&x| x != node).collect() } else { Vec::new() };
        let seq = sys.alloc_seq(node);
        self.since_collect.push(snapshot);
        self.hush(snapshot)?;
        let slot = self.push_await(Expect::Begin { node, snapshot, peers });
        self.sys().observe(ObserverRequest::Begin { snapshot, node, seq }, slot)
    }

    fn collect_state(&mut self, line: usize, text: &str) -> Result<(), Fatal> {
        self.barrier()?;
        if !self.lost_snapshots.is_empty() {
            let why: Vec<String> = std::mem::take(&mut self.lost_snapshots)
                .into_iter()
                .map(|(k, n)| format!("snapshot {k} is lost: node {n} crashed after recording it"))
                .collect();
            self.reject(line, text, why.join("; "));
            return Ok(());
        }
        let down: Vec<String> = self
            .since_collect
            .clone()
            .into_iter()
            .filter_map(|k| {
                let sys = self.system.as_ref()?;
                let n = sys.ledger.members(k).into_iter().find(|&n| sys.ledger.is_down(n))?;
                Some(format!("snapshot {k} is not complete: node {n} is down"))
            })
            .collect();
        if !down.is_empty() {
            self.reject(line, text, down.join("; "));
            return Ok(());
        }
        if self.since_collect.is_empty() {
            self.gathered.clear();
            return Ok(());
        }
        let ids = self.since_collect.clone();
        let sys = self.sys();
        let snapshots = ids.iter().map(|&k| (k, sys.ledger.members(k))).collect();
        let nodes: Vec<NodeId> = sys.ledger.nodes().collect();
        let seqs = nodes.into_iter().map(|n| (n, sys.alloc_seq(n))).collect();
        let slot = self.push_await(Expect::Collect { line, text: text.to_string(), ids });
        let wait = self.is_live();
        self.sys().observe(ObserverRequest::Collect { snapshots, seqs, wait }, slot)
    }

    /// Waits until every command given has run (a node that was given commands it does
    /// not answer is asked something it does), every answer has come and every line is out.
    fn barrier(&mut self) -> Result<(), Fatal> {
        let unanswered = self.system.as_mut().map_or(Vec::new(), |s| s.take_unanswered());
        for n in unanswered {
            if !self.is_down(n) {
                let slot = self.push_await(Expect::Settled);
                self.sys().command(n, Control::Query { tx: None }, slot)?;
            }
        }
        while self.system.as_ref().is_some_and(|s| s.owes_answers()) {
            self.wait_one()?;
        }
        self.emit_ready()
    }

    /// Blocks for at least one event, then takes every event already there.
    fn wait_one(&mut self) -> Result<(), Fatal> {
        // Only answers (and a load's progress while no answer is owed) show that the
        // processes are not stuck: a load's progress must not hide a command that hangs.
        let left = self.watchdog.saturating_sub(self.heard.elapsed());
        match self.sys().next_event(left)? {
            Some(ev) => self.on_event(ev)?,
            None => {
                let sys = self.sys();
                let mut owed: Vec<String> = sys
                    .awaiting_node
                    .iter()
                    .filter(|(_, q)| !q.is_empty())
                    .map(|(n, q)| format!("node {n} owes {}", q.len()))
                    .collect();
                owed.sort();
                if !sys.awaiting_observer.is_empty() {
                    owed.push(format!("the observer owes {}", sys.awaiting_observer.len()));
                }
                let what = if owed.is_empty() { "a load".to_string() } else { owed.join(", ") };
                let secs = self.watchdog.as_secs();
                return Err(Fatal(format!(
                    "no process answered for {secs}s (waiting on {what}); giving up"
                )));
            }
        }
        self.drain_events()?;
        self.emit_ready()
    }

    fn drain_events(&mut self) -> Result<(), Fatal> {
        while let Some(ev) = self.system.as_ref().and_then(|s| s.inbox.try_recv().ok()) {
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
                    match (peer, msg) {
                        (Peer::Node(id), Message::Report { seq, report }) => {
                            self.on_report(id, seq, report)?
                        }
                        (Peer::Node(id), Message::LoadProgress(s)) => self.on_load(id, s, false),
                        (Peer::Node(id), Message::LoadDone(s)) => self.on_load(id, s, true),
                        (Peer::Node(_), Message::Decided { tx, outcome }) => {
                            self.record_outcome(tx, outcome)
                        }
                        (Peer::Observer, Message::ObserverReply(r)) => self.on_observer(r)?,
                        (peer, other) => {
                            log::warn!("master: unexpected {other:?} from {peer}; ignored")
                        }
                    }
                }
            }
            Event::Closed { peer: Peer::Node(n), .. } if self.sys().closed(n) => {}
            Event::Closed { peer, why } => {
                let why = why.map_or(String::new(), |w| format!(" ({w})"));
                return Err(Fatal(format!("{peer} exited unexpectedly{why}")));
            }
        }
        Ok(())
    }

    fn take_slot(&mut self, id: u64) -> Result<Expect, Fatal> {
        let idx = id.checked_sub(self.first_slot).map(|i| i as usize);
        match idx.and_then(|i| self.slots.get_mut(i)) {
            Some(slot @ Slot::Await(_)) => match std::mem::replace(slot, Slot::Done(Vec::new())) {
                Slot::Await(e) => Ok(e),
                Slot::Done(_) => unreachable!("matched Await"),
            },
            _ => Err(Fatal(format!("an answer for command slot {id}, which waits for none"))),
        }
    }

    fn fill(&mut self, id: u64, outs: Vec<Out>) {
        self.heard = std::time::Instant::now();
        let idx = (id - self.first_slot) as usize;
        self.slots[idx] = Slot::Done(outs);
    }

    fn on_report(&mut self, node: NodeId, seq: u64, report: Report) -> Result<(), Fatal> {
        let queue = self.sys().awaiting_node.entry(node).or_default();
        let slot = match queue.front() {
            Some(&(s, slot)) if s == seq => {
                queue.pop_front();
                slot
            }
            // An answer to a command whose outcome the ledger predicted: the node
            // disagrees, so one of the two implementations of the rules is wrong.
            _ => {
                return Err(Fatal(format!(
                    "bug: node {node} answered {report:?} to its command {seq}, whose outcome \
                     the master's ledger predicted otherwise"
                )))
            }
        };
        let expect = self.take_slot(slot)?;
        let tracing = self.tracing();
        let mut outs = Vec::new();
        match (expect, report) {
            (Expect::Ready(trace), Report::Ready(None)) => {
                outs.extend(trace.into_iter().map(Out::Trace))
            }
            (Expect::Ready(_), Report::Ready(Some(r))) => self.apply_tx_report(node, r, &mut outs),
            (expect, Report::Crashed(r)) => {
                // The node reached its armed crash point during this command.
                if let Expect::Deliver { from, to, predicted, print, .. } = expect {
                    if print {
                        outs.push(Out::Line(output::received(from, &predicted.msg)));
                    }
                    if tracing {
                        outs.push(Out::Trace(TraceEvent::Deliver { from, to, msg: predicted.msg }));
                    }
                }
                self.apply_tx_report(node, r, &mut outs);
                self.node_died(node, &mut outs);
            }
            (
                Expect::Deliver { from, to, predicted, print, peers },
                Report::Received { msg, recorded, tx },
            ) => {
                if msg != predicted.msg || recorded.is_some() != predicted.records {
                    return Err(Fatal(format!(
                        "bug: node {to} took {msg:?} (recorded: {recorded:?}) from {from}, \
                         but the ledger predicted {predicted:?}"
                    )));
                }
                if print {
                    outs.push(Out::Line(output::received(from, &msg)));
                }
                if tracing {
                    outs.push(Out::Trace(TraceEvent::Deliver { from, to, msg }));
                    if let (Some(balance), ChannelMsg::Marker { snapshot }) = (recorded, msg) {
                        outs.extend(
                            record_events(to, snapshot, balance, &peers)
                                .into_iter()
                                .map(Out::Trace),
                        );
                    }
                }
                if let Some(r) = tx {
                    self.apply_tx_report(to, r, &mut outs);
                }
            }
            (Expect::TxStep { spec, nowait }, Report::TxStep(r)) => {
                let decided = r.decided.filter(|d| d.0 == spec.tx).map(|d| d.1);
                self.apply_tx_report(node, r, &mut outs);
                if nowait {
                    // Decided at once (the coordinator's own NO): the decision, not STARTED.
                    outs.push(Out::Line(match decided {
                        Some(outcome) => output::transfer(spec.tx, Some(outcome)),
                        None => output::transfer_started(spec.tx),
                    }));
                }
            }
            (Expect::TxRun { spec }, Report::TxStep(r)) => {
                let Some((tx, outcome)) = r.decided.filter(|d| d.0 == spec.tx) else {
                    return Err(Fatal(format!("bug: node {node} answered {} undecided", spec.tx)));
                };
                // The nodes finish it before their next command; a kill must wait for that.
                self.unsettled.extend([spec.from, spec.to]);
                let ledger = &mut self.sys().ledger;
                if outcome == TxOutcome::Committed {
                    ledger.commit_driven(spec);
                }
                // At its decision the coordinator's own leg is final, unless it is the
                // credit side of a commit (its money is on the way).
                let final_here = outcome != TxOutcome::Committed || node == spec.from;
                if final_here && (ledger.balance(node), ledger.held(node)) != (r.balance, r.held) {
                    return Err(Fatal(format!(
                        "bug: after {tx} node {node} holds {} ({} held), the ledger says {} ({} held)",
                        r.balance,
                        r.held,
                        ledger.balance(node),
                        ledger.held(node)
                    )));
                }
                self.record_outcome(tx, outcome);
            }
            (Expect::Settled, Report::State { .. }) => {}
            (Expect::LiveSend, Report::Sent) => {}
            (Expect::LiveSend, Report::ErrSend) => {
                outs.push(Out::Line(output::ERR_SEND.to_string()))
            }
            (Expect::LiveTx { spec, nowait }, Report::TxStep(r)) => {
                outs.push(Out::Line(self.live_tx_line(spec, nowait, &r)?))
            }
            (Expect::Quiet, report @ Report::Quiet { .. }) => self.quiet.push((node, report)),
            (Expect::Query, Report::State { balance, held, tx, waiting }) => {
                self.queried.push((node, balance, held, tx));
                self.waiting.extend(waiting.into_iter().map(|t| (t, node)));
            }
            (_, report) => {
                return Err(Fatal(format!("node {node} answered {report:?} unexpectedly")))
            }
        }
        self.fill(slot, outs);
        Ok(())
    }

    fn on_observer(&mut self, reply: ObserverReply) -> Result<(), Fatal> {
        let slot = self
            .sys()
            .awaiting_observer
            .pop_front()
            .ok_or_else(|| Fatal("the observer answered a request it was not given".into()))?;
        let expect = self.take_slot(slot)?;
        let mut outs = Vec::new();
        match (expect, reply) {
            (Expect::Relinked, ObserverReply::Relinked) => {}
            (Expect::LiveBegun, ObserverReply::Started { .. }) => {}
            (Expect::LiveCheck, ObserverReply::Collected(snaps)) => {
                outs.push(Out::Line(self.live_check_line(&snaps)))
            }
            (Expect::Begin { node, snapshot, peers }, ObserverReply::Started { balance }) => {
                outs.push(Out::Line(output::started(node)));
                if self.tracing() {
                    outs.extend(
                        record_events(node, snapshot, balance, &peers).into_iter().map(Out::Trace),
                    );
                }
            }
            (Expect::Collect { ids, .. }, ObserverReply::Collected(snaps)) => {
                for s in &snaps {
                    let members: Vec<NodeId> = s.nodes.iter().map(|n| n.0).collect();
                    let created = self.sys().ledger.created_by(&members);
                    if s.total() != Some(created) {
                        return Err(Fatal(format!(
                            "bug: snapshot {} holds {:?} but its nodes created {created}",
                            s.snapshot,
                            s.total()
                        )));
                    }
                }
                self.since_collect.retain(|k| !ids.contains(k));
                if self.tracing() {
                    let evs = snaps.iter().map(|s| TraceEvent::Collect { snapshot: s.snapshot });
                    outs.extend(evs.map(Out::Trace));
                }
                self.gathered = snaps;
            }
            (Expect::Collect { line, text, .. }, ObserverReply::NotComplete(list)) => {
                let why: Vec<String> = list
                    .iter()
                    .map(|inc| {
                        // A thousand nodes have a million channels: name the first ones.
                        const NAMED: usize = 100;
                        let mut chans: Vec<String> = inc
                            .open
                            .iter()
                            .take(NAMED)
                            .map(|(s, d)| format!("{s} -> {d}"))
                            .collect();
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
                outs.push(Out::Error(format!("error: line {line}: {text}: {}", why.join("; "))));
                self.rejected = true;
            }
            (_, reply) => {
                return Err(Fatal(format!("the observer answered {reply:?} unexpectedly")))
            }
        }
        self.fill(slot, outs);
        Ok(())
    }

    /// Writes out every finished slot at the front of the queue.
    fn emit_ready(&mut self) -> Result<(), Fatal> {
        while let Some(Slot::Done(_)) = self.slots.front() {
            let Some(Slot::Done(outs)) = self.slots.pop_front() else { unreachable!() };
            self.first_slot += 1;
            for out in outs {
                match out {
                    Out::Line(l) => {
                        self.stdout.write_all(l.as_bytes()).map_err(stdout_gone)?;
                        if !l.ends_with('\n') {
                            self.stdout.write_all(b"\n").map_err(stdout_gone)?;
                        }
                        if self.bar_shown() {
                            // On a terminal the line must not land inside the bar.
                            let stdout = &mut self.stdout;
                            let live = self.live.as_ref();
                            let bar = live.and_then(|l| l.load.as_ref()).and_then(|r| r.bar());
                            let flushed = match bar {
                                Some(bar) => bar.suspend(|| stdout.flush()),
                                None => stdout.flush(),
                            };
                            flushed.map_err(stdout_gone)?;
                        }
                    }
                    Out::Error(e) => {
                        self.stdout.flush().map_err(stdout_gone)?;
                        self.with_bar_hidden(|| {
                            let _ = writeln!(io::stderr(), "{e}");
                        });
                    }
                    Out::Trace(ev) => {
                        if let Some(t) = self.trace.as_mut() {
                            writeln!(t, "{}", ev.to_json())
                                .map_err(|e| Fatal(format!("cannot write the trace: {e}")))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn stdout_gone(e: io::Error) -> Fatal {
    Fatal(format!("cannot write standard output: {e}"))
}
