//! The node process: a thin driver around one [`Branch`].
//!
//! One thread owns the branch and reads every link through an inline hub while it waits.
//! It files channel messages into per-channel queues (`channels`: a node takes a message
//! only when a command says so, or as it arrives in live mode), runs the commands of the
//! master and the observer strictly in sequence-number order (`commands`), feeds the
//! branch, and carries out its effects in order (`apply`): records to the log, messages
//! into the links, crash points, decisions. Nothing leaves before what it relies on is
//! on disk (`outbox`: persist-then-send, with group commit).
//!
//! Two schedules beyond "one command at a time" are the driver's own, and each uses only
//! what the machines say: a *driven* transfer runs node to node without the master
//! stepping it (`driven`), and *live mode* delivers as messages arrive, generates loads
//! and keeps channels whole across crashes (`live`, `load`, `channels`).
//!
//! Called by `main` for the hidden `node` role; it never writes stdout.

use crate::ids::{Amount, NodeId, TxnId};
use crate::protocol::{Branch, Effect, Force, Record};
use crate::transport::{self, Book, ChildLinks, Event, Names};
use crate::wal::WalFile;
use crate::wire::{ChannelMsg, CrashPoint, Message, Peer, Report, TxOutcome, TxReport};
use crossbeam_channel::{Receiver, TryRecvError};
use std::io;

mod channels;
mod commands;
mod driven;
mod live;
mod load;
mod outbox;

use channels::Channels;
use commands::Commands;
use driven::Driven;
use live::Live;
use outbox::{io_err, Outbox};

/// What a node process is started with.
#[derive(Debug, Clone)]
pub struct NodeArgs {
    /// Its id.
    pub id: NodeId,
    /// Its opening balance.
    pub balance: Amount,
    /// The run's socket-name prefix.
    pub run: String,
    /// The run's nonce.
    pub nonce: u64,
    /// The master's pid: the node exits if its parent is not this process (a host
    /// agent's pid, on several hosts).
    pub master_pid: u32,
    /// On several hosts: TCP links, addresses from the master's directory.
    pub tcp: bool,
    /// Every record is forced before anyone is told of it (plain Sends too).
    pub durable: bool,
}

/// Runs a node until the master goes away.
///
/// # Errors
/// Setting up the process or a link failed, or a link broke mid-run.
pub fn run(args: NodeArgs) -> io::Result<()> {
    let ChildLinks { hub, master, inbox } = transport::start_child(transport::ChildStart {
        parent: args.master_pid,
        nonce: args.nonce,
        tcp: args.tcp,
        control: !args.tcp,
        inline: true,
    })?;
    let book = if args.tcp {
        Book::Tcp(Default::default())
    } else {
        Book::Local(Names::from_prefix(&args.run))
    };
    // SAFETY: the master passes every node its log as fd 5; taken once.
    let file = unsafe { crate::process::inherited_wal() };
    let path = format!("node {} log", args.id);
    let (wal, records) = WalFile::from_file(file, std::path::Path::new(&path)).map_err(io_err)?;
    let mut outbox = Outbox::new(hub, master, wal, args.durable);
    let mut recovery = None;
    let branch = if records.is_empty() {
        // Not forced: it reaches the disk with the first forced record, and before that
        // the master knows the opening balance.
        outbox.append(&Record::Opened { balance: args.balance }, false)?;
        Branch::new(args.id, args.balance)
    } else {
        // A restart: everything this node knows comes from its log. What the dead
        // process wrote may not have been synced yet (it was killed between writing
        // and syncing): it is, before anything recovery sends relies on it.
        outbox.sync_log()?;
        let mut out = Vec::new();
        let branch = Branch::recover(args.id, &records, &mut out);
        recovery = Some(out);
        log::info!("node {}: recovered {} records", args.id, records.len());
        branch
    };
    let mut node = Node {
        branch,
        recovery,
        armed: None,
        book,
        nonce: args.nonce,
        outbox,
        channels: Channels::from_log(&records),
        commands: Commands::default(),
        driven: Driven::default(),
        live: Live::default(),
        load: None,
        effects: Vec::new(),
        costs: Default::default(),
    };
    node.run(inbox)
}

/// A node process: its machine and the driver's parts.
struct Node {
    branch: Branch,
    /// After a restart, what recovery must send once `Setup` has linked the node.
    recovery: Option<Vec<Effect>>,
    /// The crash point `CrashAt` armed, if any.
    armed: Option<CrashPoint>,
    /// Where the observer and the other nodes listen.
    book: Book,
    nonce: u64,
    outbox: Outbox,
    channels: Channels,
    commands: Commands,
    driven: Driven,
    live: Live,
    /// This node's share of a running `Load`.
    load: Option<load::Load>,
    /// The effects of the step being carried out (a buffer kept between steps).
    effects: Vec<Effect>,
    /// Per protocol (`Protocol::ALL` order): messages sent and forced writes made for
    /// transactions by this process (`Stats`).
    costs: [crate::wire::Cost; 3],
}

/// Why the event loop ended without an error.
enum Stop {
    /// The master (or the observer) is gone: the run is over.
    RunOver,
}

impl Node {
    fn run(&mut self, inbox: Receiver<Event>) -> io::Result<()> {
        loop {
            self.run_ready()?;
            let event = match inbox.try_recv() {
                Ok(ev) => ev,
                Err(TryRecvError::Empty) => {
                    // Everything that arrived is handled: a load takes its next batch,
                    // then the batch's records and messages leave together.
                    let load_wait = self.step_load()?;
                    let tick_wait = self.tick()?;
                    if !self.outbox.holds_ack(self.commands.is_empty()) {
                        self.flush()?;
                    }
                    let timeout = match (load_wait, tick_wait) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    self.outbox.wait(timeout)?;
                    continue;
                }
                Err(TryRecvError::Disconnected) => return Ok(()),
            };
            if let Some(Stop::RunOver) = self.on_event(event)? {
                return Ok(());
            }
        }
    }

    fn on_event(&mut self, event: Event) -> io::Result<Option<Stop>> {
        match event {
            Event::Connected(link) => {
                let peer = link.peer();
                self.outbox.add(link);
                if let Peer::Node(p) = peer {
                    self.channels.linked(p);
                    if self.live.on {
                        self.start_resync(p);
                    }
                }
            }
            Event::Frames { peer, msgs } => {
                for msg in msgs {
                    self.on_message(peer, msg)?;
                }
            }
            Event::Closed { peer, why } => {
                log::debug!("node {}: link to {peer} closed ({why:?})", self.branch.id());
                match peer {
                    Peer::Master | Peer::Observer => return Ok(Some(Stop::RunOver)),
                    // A peer died; the master keeps what was in flight to it and has it
                    // resent when the peer restarts (in live mode the two nodes resync
                    // their channel). The link is not removed here: this event may come
                    // after the restarted peer's new link replaced it.
                    Peer::Node(p) if self.live.on => self.peer_gone(p)?,
                    Peer::Node(_) => {}
                }
            }
        }
        Ok(None)
    }

    fn on_message(&mut self, peer: Peer, msg: Message) -> io::Result<()> {
        match (peer, msg) {
            (Peer::Node(from), Message::Channel(m)) => self.arrive(from, m)?,
            (Peer::Node(from), Message::Numbered { seq, amount }) => {
                if self.channels.take_numbered(self.branch.id(), from, seq) {
                    self.arrive(from, ChannelMsg::Transfer { amount })?;
                }
            }
            (Peer::Node(from), Message::Resync { got, owed }) => {
                self.on_resync(from, got, &owed)?
            }
            (Peer::Node(from), Message::Got { got }) => self.channels.on_got(from, got),
            (Peer::Node(from), Message::Drive { tx }) => self.driven.follow(tx, from),
            (Peer::Node(from), Message::Hurry) => {
                log::debug!("node {}: {from} waits for acks", self.branch.id());
                self.outbox.release_ack();
            }
            (Peer::Master, Message::Directory { observer, nodes }) => {
                let nodes = nodes.into_iter().collect();
                self.book = Book::Tcp(transport::Directory { observer, nodes });
            }
            (Peer::Master, Message::Hush { snapshot }) => self.live.hush(snapshot),
            (Peer::Master | Peer::Observer, Message::Control { seq, cmd }) => {
                self.commands.queue(self.branch.id(), seq, peer, cmd);
            }
            (peer, other) => {
                log::warn!("node {}: unexpected {other:?} from {peer}; ignored", self.branch.id())
            }
        }
        Ok(())
    }

    /// A channel message from `from` has arrived: delivered now in live mode, else
    /// queued for a command (or a driven transaction) to take.
    fn arrive(&mut self, from: NodeId, m: ChannelMsg) -> io::Result<()> {
        self.channels.count_in(from, &m);
        if self.live.on {
            return self.deliver_live(from, m);
        }
        let commit = matches!(m, ChannelMsg::Commit(_));
        self.channels.queue(from, m);
        if commit && self.driven.is_active() {
            self.deliver_driven()?;
        }
        Ok(())
    }

    /// Enqueues `msg` on the channel to `to`. A peer that is down has no working link:
    /// the master keeps the message in its ledger and has it resent when the peer is
    /// back (in live mode it waits here for the peer's next link). Frames leave only
    /// through a flush, which writes the log first.
    fn send_to_peer(&mut self, to: NodeId, msg: ChannelMsg) -> io::Result<()> {
        let wire = self.channels.wire(to, msg, self.live.on);
        self.send_wire(to, wire)
    }

    fn send_wire(&mut self, to: NodeId, wire: Message) -> io::Result<()> {
        let Some(wire) = self.channels.hold(to, wire) else { return Ok(()) };
        if !self.outbox.has(Peer::Node(to)) {
            if self.live.on {
                self.channels.hold_for_down(to, wire);
            }
            return Ok(());
        }
        let promise = matches!(wire, Message::Channel(ChannelMsg::Commit(_)));
        self.outbox.push(Peer::Node(to), &wire, promise)
    }

    /// Writes every record and frame (see `outbox`); in live mode peers first learn how
    /// many of their Transfers arrived.
    fn flush(&mut self) -> io::Result<()> {
        if self.live.on {
            self.tell_got(false)?;
        }
        self.outbox.flush(self.live.on)
    }

    /// Carries out a step's effects in order, and empties `out`. `cmd` is the command
    /// that took the step, if one did: the one a crash point reports to.
    fn apply(&mut self, out: &mut Vec<Effect>, cmd: Option<(Peer, u64)>) -> io::Result<()> {
        // Transactions whose forced records this step wrote: one forced write each.
        let mut forced: Vec<TxnId> = Vec::new();
        let mut decisions = Vec::new();
        // The protocol of the last transaction that sent: a step's messages are mostly
        // one transaction's, so the cost counting looks it up once.
        let mut sender: Option<(TxnId, usize)> = None;
        for i in 0..out.len() {
            match &out[i] {
                &Effect::Point(p) if self.armed == Some(p) => {
                    let report = self.tx_report(&out[..i]);
                    self.die(cmd, report);
                }
                Effect::Send { to, msg } => {
                    let (to, msg) = (*to, msg.clone());
                    if let ChannelMsg::Commit(m) = &msg {
                        let p = match sender {
                            Some((tx, p)) if tx == m.tx() => p,
                            _ => self.protocol_index(m.tx()),
                        };
                        sender = Some((m.tx(), p));
                        self.costs[p].messages += 1;
                    }
                    self.send_to_peer(to, msg)?
                }
                Effect::Log { rec, force } => {
                    let (rec, force) = (rec.clone(), force.forced());
                    if let Record::Sent { to, amount } = rec {
                        self.channels.record_sent(to, amount);
                    }
                    if let Some(tx) = rec.tx().filter(|t| force && !forced.contains(t)) {
                        forced.push(tx);
                    }
                    // Synced by the next flush, before any message leaves.
                    self.outbox.append(&rec, force)?;
                }
                &Effect::Decided { tx, outcome } => decisions.push((tx, outcome)),
                Effect::Dropped { tx, amount } => {
                    log::info!("{tx}: its credit of {amount} came after this node aborted it")
                }
                Effect::Point(_) => {}
            }
        }
        for tx in forced {
            let p = self.protocol_index(tx);
            self.costs[p].forced += 1;
        }
        out.clear();
        if !decisions.is_empty() {
            self.on_decisions(decisions)?;
        }
        Ok(())
    }

    /// Runs `step` against the branch with the effects buffer, then carries them out.
    fn step(
        &mut self,
        cmd: Option<(Peer, u64)>,
        step: impl FnOnce(&mut Branch, &mut Vec<Effect>),
    ) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.effects);
        step(&mut self.branch, &mut out);
        self.apply(&mut out, cmd)?;
        self.effects = out;
        Ok(())
    }

    /// What the effects of a commit step mean for the master.
    fn tx_report(&self, out: &[Effect]) -> Box<TxReport> {
        let mut report = TxReport {
            sent: Vec::new(),
            decided: Vec::new(),
            money: self.branch.money(),
            dropped: Vec::new(),
        };
        for e in out {
            match e {
                Effect::Send { to, msg: ChannelMsg::Commit(m) } => {
                    report.sent.push((*to, m.clone()))
                }
                Effect::Decided { tx, outcome } => report.decided.push((*tx, *outcome)),
                Effect::Dropped { tx, amount } => report.dropped.push((*tx, *amount)),
                _ => {}
            }
        }
        Box::new(report)
    }

    /// The answer to the `Transfer` command number `seq`, once this node (its
    /// coordinator) has decided `tx`.
    fn decided(&self, seq: u64, tx: TxnId, outcome: TxOutcome) -> Message {
        let report = TxReport {
            sent: Vec::new(),
            decided: vec![(tx, outcome)],
            money: self.branch.money(),
            dropped: Vec::new(),
        };
        Message::Report { seq, report: Report::TxStep(Box::new(report)) }
    }

    /// The index (in `Protocol::ALL`) of the protocol `tx` runs by here.
    fn protocol_index(&self, tx: TxnId) -> usize {
        self.branch.protocol(tx).unwrap_or_default().index()
    }

    /// The armed crash point is reached: make what the step did so far visible (the log
    /// written, the messages in the peers' sockets), tell whoever gave the command that
    /// took the step, and die as SIGKILL would have it. What the log holds unforced is
    /// written but not synced: a killed process keeps it, as the page cache outlives the
    /// process.
    fn die(&mut self, cmd: Option<(Peer, u64)>, report: Box<TxReport>) -> ! {
        log::info!("node {}: reached {:?}, crashing", self.branch.id(), self.armed);
        let _ = self.flush();
        let costs = self.costs;
        if let Some((from, seq)) = cmd {
            if let Ok(link) = self.outbox.link(from) {
                let _ = link.send(&Message::Report { seq, report: Report::Crashed(report, costs) });
                let _ = link.flush();
            }
        }
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        std::process::abort()
    }
}

/// The peer a step's deferrable force serves, when that step is only a payee's commit
/// and its ack to the coordinator that paid it (a [`Force::Deferrable`] record, then
/// messages to that one peer): the one step whose sync may wait (`Outbox::defer_ack`).
fn lazy_ack(out: &[Effect]) -> Option<NodeId> {
    let mut deferrable = false;
    let mut to = None;
    for e in out {
        match e {
            Effect::Log { force: Force::Deferrable, .. } if !deferrable => deferrable = true,
            Effect::Send { to: t, .. } if to.is_none_or(|p| p == *t) => to = Some(*t),
            Effect::Point(_) => {}
            _ => return None,
        }
    }
    to.filter(|_| deferrable)
}

#[cfg(test)]
mod tests;
