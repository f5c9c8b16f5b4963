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

mod events;
mod faults;
mod live;
mod scripted;
mod txn;
mod web;

use events::stdout_gone;

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
    /// How long the master waits for any answer before it declares the run hung.
    pub watchdog: Duration,
    /// The live page's server, when `--web` started one.
    pub web: Option<crate::web::Web>,
    /// The hosts the nodes run on (`--hosts`), or `None` for this machine.
    pub hosts: Option<crate::cluster::Hosts>,
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
        hosts: cfg.hosts,
        txns: Txns::default(),
        queried: Vec::new(),
        lost_snapshots: Vec::new(),
        unsettled: BTreeSet::new(),
        waiting: Vec::new(),
        live: None,
        loads: 0,
        quiet: Vec::new(),
        ended: Vec::new(),
        costs: Default::default(),
        heard: std::time::Instant::now(),
        at_line: 0,
        unreachable: Default::default(),
        watchdog: cfg.watchdog,
        open_files,
        max_nodes: crate::process::nodes_that_fit(open_files),
        web: cfg.web,
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
    /// A node answered `Ended`.
    Ended,
    /// A node answered `Costs`.
    Costs,
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
    /// The live page, fed after every command.
    web: Option<crate::web::Web>,
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
    /// The hosts the nodes run on, if not this machine.
    hosts: Option<crate::cluster::Hosts>,
    txns: Txns,
    /// Answers to `Query`: (node, balance, held, transaction state).
    queried: Vec<(NodeId, Amount, Amount, Option<crate::wire::TxState>)>,
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
    /// Answers to `Ended`: per node, its ended transactions.
    ended: Vec<(NodeId, Vec<(TxnId, crate::wire::TxState)>)>,
    /// The sum of the answers to `Costs`, per protocol.
    costs: [crate::wire::Cost; 3],
    /// When an answer (or a load's progress) last came: the watchdog's start.
    heard: std::time::Instant,
    /// The line being run (for `error: line N: node <id> unreachable`).
    at_line: usize,
    /// Nodes on other hosts reported unreachable while this line waits on them.
    unreachable: std::collections::BTreeSet<NodeId>,
    /// How long the master waits for any answer before it declares the run hung.
    watchdog: Duration,
    /// The open-files limit of every process of the run, and how many nodes fit in it.
    open_files: u64,
    max_nodes: u64,
}

/// A line of standard input as it runs: without its end, the first line without a
/// byte-order mark; as for a file, a stray non-UTF-8 byte spoils its line only.
fn stdin_line(bytes: &mut Vec<u8>, first: bool) -> std::borrow::Cow<'_, str> {
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

fn record_events(
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
            Input::Web { file, step, interactive } => {
                return self.walk_web(file, step, interactive)
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
                    n += 1;
                    self.line(n, &stdin_line(&mut bytes, n == 1))?;
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
            let super::prompt::Typed::Line(line) = prompt.read() else { return Ok(()) };
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
        self.at_line = n;
        self.unreachable.clear();
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

    /// Whether trace events are built: for `--trace`, and for the live page's diagram
    /// outside live mode (live mode writes no trace).
    fn tracing(&self) -> bool {
        self.trace.is_some() || (self.web.is_some() && self.live.is_none())
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
}
