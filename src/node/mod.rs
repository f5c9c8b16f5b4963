//! The node process: links, command order, and the [`Branch`] machine.
//!
//! One thread owns the branch and reads every link through an inline [`Hub`] while it
//! waits, which queues events; this driver files channel messages into per-channel FIFO
//! queues (arrived, not yet delivered: a node takes a message only when a command says
//! so), and runs the commands of the master and the observer strictly in sequence-number
//! order. A command
//! that cannot run yet (a Receive whose message is still on its way, an AddPeer whose
//! link is not up) waits while events keep arriving. Writes are buffered and flushed
//! before the thread blocks, so a burst of commands costs one write per link.
//!
//! A driven `Transfer` is the one exception to "only when a command says so": its
//! coordinator tells the other participant (`Message::Drive`, ahead of the `Prepare` on
//! the same link) and both deliver that transaction's messages as they arrive. The
//! coordinator answers the command as soon as it has decided (a commit is then logged,
//! as chapter 5's `COMMITTED` requires); neither node runs another command before it is
//! done with the transaction (the coordinator acked by both sides, the other participant
//! after its last message), so every later command sees the transaction finished. The
//! one exception: a debit side that coordinated a commit runs its next driven `Transfer`
//! before the ack comes, and the credit side holds that ack back with its sync until its
//! next forced record (`LazyAck`); any other command waits for the ack and asks for it
//! (`Message::Hurry`). The master asks for driven transfers only when the channels
//! between the two are empty, so FIFO order is kept.
//!
//! Called by `main` for the hidden `node` role; it never writes stdout.

use crate::ids::{Amount, NodeId, TxnId};
use crate::protocol::{Branch, Effect, Force, Record};
use crate::transport::{self, Book, ChildLinks, Event, Hub, Link, Names};
use crate::wal::{WalError, WalFile};
use crate::wire::{
    ChannelMsg, CommitMsg, Control, CrashPoint, Hello, Message, Peer, Report, TwoPcMsg, TxOutcome,
    TxReport,
};
use crossbeam_channel::{Receiver, TryRecvError};
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;
use std::io;

mod execute;
mod links;
mod live;

pub use live::MAX_OPS_PER_NODE;

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
    let mut branch = Branch::new(args.id, args.balance);
    let mut recovery = Vec::new();
    let mut restarted = false;
    // SAFETY: the master passes every node its log as fd 5; taken once.
    let file = unsafe { crate::process::inherited_wal() };
    let path = format!("node {} log", args.id);
    let (mut wal, records) =
        WalFile::from_file(file, std::path::Path::new(&path)).map_err(io_err)?;
    if records.is_empty() {
        // Not forced: it reaches the disk with the first forced record, and before that
        // the master knows the opening balance.
        wal.append(&Record::Opened { balance: args.balance }).map_err(io_err)?;
    } else {
        // A restart: everything this node knows comes from its log. What the dead
        // process wrote may not have been synced yet (it was killed between writing
        // and syncing): it is, before anything recovery sends relies on it.
        wal.sync().map_err(io_err)?;
        branch = Branch::recover(args.id, &records, &mut recovery);
        restarted = true;
        log::info!("node {}: recovered {} records", args.id, records.len());
    }
    let (mut sent, mut got) = (HashMap::default(), HashMap::default());
    for rec in &records {
        match *rec {
            Record::Sent { to, amount } => sent.entry(to).or_insert_with(Vec::new).push(amount),
            Record::Deposited { from, .. } => *got.entry(from).or_insert(0) += 1,
            _ => {}
        }
    }
    let mut node = Node {
        branch,
        recovery,
        restarted,
        armed: None,
        link_gen: HashMap::default(),
        book,
        durable: args.durable,
        nonce: args.nonce,
        hub,
        links: master.into_iter().map(|m| (Peer::Master, m)).collect(),
        arrived: HashMap::default(),
        commands: VecDeque::new(),
        next_seq: 0,
        effects: Vec::new(),
        wal,
        following: Vec::new(),
        pending: None,
        acking: Vec::new(),
        hurried: Default::default(),
        lazy: None,
        told_decision: false,
        live: false,
        sent,
        got,
        other_msgs: (0, 0),
        resyncing: HashMap::default(),
        gone: Default::default(),
        asks: HashMap::default(),
        decisions: Vec::new(),
        load: None,
        sync_due: false,
        retry: live::Retry::default(),
        hush: None,
        whole_at: None,
        told: HashMap::default(),
        their_got: HashMap::default(),
        after_sync: Default::default(),
        costs: Default::default(),
    };
    node.run(inbox)
}

struct Node {
    branch: Branch,
    /// What recovery must send, once `Setup` has linked the node to its peers.
    recovery: Vec<Effect>,
    /// This process took over a log that already held records.
    restarted: bool,
    /// The crash point `CrashAt` armed, if any.
    armed: Option<CrashPoint>,
    /// How many links each peer has opened to this node so far (a peer that restarted
    /// opens a new one); `Resend` waits for the link of the right generation.
    link_gen: HashMap<NodeId, u32>,
    /// Where the observer and the other nodes listen.
    book: Book,
    /// Force plain Send records too (SPEC chapter 10's durability).
    durable: bool,
    nonce: u64,
    hub: Hub,
    links: HashMap<Peer, Link>,
    /// Messages that arrived on each incoming channel and were not delivered yet.
    arrived: HashMap<NodeId, VecDeque<ChannelMsg>>,
    /// Commands not run yet, with who sent them: slot `i` holds command `next_seq + i`.
    /// The master and the observer both send commands, so one may arrive before an
    /// earlier one; its slot waits empty until then.
    commands: VecDeque<Option<(Peer, Control)>>,
    next_seq: u64,
    effects: Vec<Effect>,
    /// The write-ahead log: every money move and two-phase-commit record.
    wal: WalFile<Record>,
    /// Driven transactions whose other participant this node is and which still expect
    /// a message from it (its vote, or its ack), with their coordinator, in the order
    /// their `Drive` came. No command runs meanwhile.
    following: Vec<(TxnId, NodeId)>,
    /// The driven `Transfer` this node coordinates and has not answered yet (or, when
    /// its money comes to this node, is not done with). No command runs meanwhile.
    pending: Option<Pending>,
    /// Driven transactions this node coordinated as their debit side, answered and
    /// waiting only for the credit side's ack, with that peer. Their acks are delivered
    /// as they arrive; only another driven `Transfer` runs meanwhile (nothing it does
    /// depends on an ack), and any other command waits for them.
    acking: Vec<(TxnId, NodeId)>,
    /// Peers of `acking` told to hurry (`Message::Hurry`): a command waits for them.
    hurried: std::collections::BTreeSet<NodeId>,
    /// A credit side's ack held back, with its sync: see [`LazyAck`].
    lazy: Option<LazyAck>,
    /// Live mode (SPEC chapter 7): every message is delivered as it arrives.
    live: bool,
    /// Per peer: the amount of every Transfer sent to it, in order (a Transfer's number
    /// is its index). Rebuilt from the log on restart; live mode sends the tail again to
    /// a peer that lost it.
    sent: HashMap<NodeId, Vec<Amount>>,
    /// Per peer: how many of its Transfers have arrived here.
    got: HashMap<NodeId, u64>,
    /// Other channel messages (markers, two-phase commit) sent and received, ever.
    other_msgs: (u64, u64),
    /// Live mode: peers on a new link whose `Resync` has not come yet, with what is held
    /// back for them meanwhile, in order.
    resyncing: HashMap<NodeId, Vec<Message>>,
    /// Live mode: peers whose process is gone (no load transfer is started with them).
    gone: std::collections::BTreeSet<NodeId>,
    /// Live mode: `Transfer` commands answered at their decision: who asked, the number.
    asks: HashMap<TxnId, (Peer, u64)>,
    /// Decisions this node took as coordinator in the effects just carried out.
    decisions: Vec<(TxnId, TxOutcome)>,
    /// This node's share of a running `Load`.
    load: Option<live::Load>,
    /// A forced record was appended: the next flush syncs the log before any message
    /// leaves (group commit: every record forced meanwhile shares that one sync).
    sync_due: bool,
    /// Live mode's timeouts.
    retry: live::Retry,
    /// A snapshot is beginning (`Message::Hush`), and since when: a load pauses here
    /// until this node has the whole of it, or for a while.
    hush: Option<(crate::ids::SnapshotId, std::time::Instant)>,
    /// Since when this node has had the whole of the hushed snapshot.
    whole_at: Option<std::time::Instant>,
    /// Live mode: per peer, how many of its Transfers this node last told it had arrived.
    told: HashMap<NodeId, u64>,
    /// Live mode: per peer, how many of this node's Transfers it last said had arrived
    /// (a load sends no more than a window beyond it, so channels stay short and a
    /// marker is not stuck behind a deep queue).
    their_got: HashMap<NodeId, u64>,
    /// Peers whose link holds a two-phase-commit message pushed while a forced record
    /// waited for its sync: that link leaves after the sync; the others before it.
    after_sync: std::collections::BTreeSet<NodeId>,
    /// Live mode: a decision (or a count of them) was pushed to the master since the last
    /// flush; until then the links to the master and the observer leave before the sync,
    /// as nothing else they carry in live mode promises anything (a snapshot's report, a
    /// balance, a Send's answer), so a command under load is not held by the log.
    told_decision: bool,
    /// Per protocol (`Protocol::ALL` order): messages sent and forced writes made for
    /// transactions by this process (`Stats`).
    costs: [crate::wire::Cost; 3],
}

fn io_err(e: WalError) -> io::Error {
    match e {
        WalError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// A driven `Transfer` at its coordinator.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Who asked, and the command's number.
    asker: Peer,
    seq: u64,
    tx: TxnId,
    /// The other participant: its messages of `tx` are delivered as they arrive.
    peer: NodeId,
    /// The answer (the decision) has gone.
    answered: bool,
}

/// A credit side's commit of a driven transaction, written to the log and not yet
/// synced, and its ack held back in the link to the coordinator (its only frames): the
/// sync and the ack wait for the next forced record (the next transaction's `Prepared`,
/// usually on its way), so back-to-back transfers pay one sync less each. They wait only
/// while nothing else happens here: another record, another frame, any command, or the
/// coordinator's `Hurry` (a command waits there) ends the wait. The coordinator needs
/// the ack for nothing but forgetting the transaction, which it answered already.
#[derive(Debug, Clone, Copy)]
struct LazyAck {
    /// The coordinator.
    peer: NodeId,
    /// How much its link held then.
    buffered: usize,
}

/// The peer a step's deferrable force serves, when that step is only a payee's commit
/// and its ack to the coordinator that paid it (a [`Force::Deferrable`] record, then
/// messages to that one peer): the one step whose sync may wait (see [`LazyAck`]).
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
                    if !self.holds_ack() {
                        self.flush_all()?;
                    }
                    let timeout = match (load_wait, tick_wait) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    self.hub.wait(timeout)?;
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
                self.links.insert(peer, link);
                if let Peer::Node(p) = peer {
                    *self.link_gen.entry(p).or_default() += 1;
                    if self.live {
                        self.start_resync(p);
                    }
                }
            }
            Event::Frames { peer, msgs } => {
                for msg in msgs {
                    match (peer, msg) {
                        (Peer::Node(from), Message::Channel(m)) => self.arrive(from, m)?,
                        (Peer::Node(from), Message::Numbered { seq, amount }) => {
                            self.arrive_numbered(from, seq, amount)?
                        }
                        (Peer::Node(from), Message::Resync { got, owed }) => {
                            self.on_resync(from, got, &owed)?
                        }
                        (Peer::Node(from), Message::Got { got }) => {
                            let theirs = self.their_got.entry(from).or_default();
                            *theirs = (*theirs).max(got);
                        }
                        (Peer::Node(from), Message::Drive { tx }) => {
                            self.following.push((tx, from))
                        }
                        (Peer::Node(from), Message::Hurry) => {
                            log::debug!("node {}: {from} waits for acks", self.branch.id());
                            self.lazy = None;
                        }
                        (Peer::Master, Message::Directory { observer, nodes }) => {
                            let nodes = nodes.into_iter().collect();
                            self.book = Book::Tcp(transport::Directory { observer, nodes });
                        }
                        (Peer::Master, Message::Hush { snapshot }) => {
                            self.hush = Some((snapshot, std::time::Instant::now()));
                        }
                        (Peer::Master | Peer::Observer, Message::Control { seq, cmd }) => {
                            self.queue_command(seq, peer, cmd);
                        }
                        (peer, other) => log::warn!(
                            "node {}: unexpected {other:?} from {peer}; ignored",
                            self.branch.id()
                        ),
                    }
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
                    Peer::Node(p) if self.live => self.peer_gone(p)?,
                    Peer::Node(_) => {}
                }
            }
        }
        Ok(None)
    }

    /// A channel message from `from` has arrived: delivered now in live mode, else
    /// queued for a command (or a driven transfer) to take.
    fn arrive(&mut self, from: NodeId, m: ChannelMsg) -> io::Result<()> {
        if let ChannelMsg::Transfer { .. } = m {
            *self.got.entry(from).or_default() += 1;
        } else {
            self.other_msgs.1 += 1;
        }
        if self.live {
            return self.deliver_live(from, m);
        }
        let driving =
            self.pending.is_some() || !self.acking.is_empty() || !self.following.is_empty();
        let commit = matches!(m, ChannelMsg::Commit(_));
        self.arrived.entry(from).or_default().push_back(m);
        if driving && commit {
            self.deliver_driven()?;
        }
        Ok(())
    }

    /// Whether a message of `tx` from `from` is delivered as it arrives: it belongs to the
    /// driven transaction this node coordinates, to one whose ack it waits for, or, when
    /// it coordinates none, to the first one it follows (a later one waits, as it would if
    /// the master delivered each transfer's messages in turn). Once a node is done with a
    /// driven transaction, no message of it is left to come.
    fn delivers_now(&self, from: NodeId, tx: TxnId) -> bool {
        let current = match self.pending {
            Some(p) => (p.tx, p.peer) == (tx, from),
            None => self.following.first() == Some(&(tx, from)),
        };
        current || self.acking.contains(&(tx, from))
    }

    /// Delivers, as `Receive` would, every head message that belongs to a driven
    /// transaction (see `delivers_now`); answers the pending `Transfer` once decided; and
    /// goes on with the next one once one ends.
    fn deliver_driven(&mut self) -> io::Result<()> {
        loop {
            let peers = self.pending.map(|p| p.peer).into_iter();
            let peers = peers.chain(self.acking.iter().map(|a| a.1));
            let mut peers = peers.chain(self.following.first().map(|f| f.1));
            let head = peers.find_map(|p| match self.arrived.get(&p)?.front()? {
                msg @ ChannelMsg::Commit(m) if self.delivers_now(p, m.tx()) => {
                    Some((p, msg.clone(), m.tx()))
                }
                _ => None,
            });
            let Some((from, msg, tx)) = head else { return Ok(()) };
            self.arrived.get_mut(&from).and_then(|q| q.pop_front());
            let mut out = std::mem::take(&mut self.effects);
            self.branch.on_deliver(from, msg, &mut out);
            if self.branch.done_with(tx) {
                self.following.retain(|&(t, _)| t != tx);
            }
            // With nothing else waiting to leave, a credit side's ack may wait for the
            // next sync (see LazyAck).
            let lazy = lazy_ack(&out).filter(|_| {
                !self.sync_due && !self.wal.is_dirty() && self.links.values().all(|l| !l.is_dirty())
            });
            self.apply(&mut out, None)?;
            self.effects = out;
            if let Some(peer) = lazy {
                // Written now (a killed process leaves it in the page cache); synced later.
                self.wal.write_ahead().map_err(io_err)?;
                let buffered = self.links.get(&Peer::Node(peer)).map_or(0, Link::buffered);
                self.lazy = Some(LazyAck { peer, buffered });
            }
            let branch = &self.branch;
            self.acking.retain(|&(t, _)| !branch.finished(t));
            let acking = &self.acking;
            self.hurried.retain(|p| acking.iter().any(|a| a.1 == *p));
            self.answer_pending()?;
        }
    }

    /// Whether the ack of a [`LazyAck`] still waits: nothing happened here since.
    fn holds_ack(&self) -> bool {
        let Some(l) = self.lazy else { return false };
        self.commands.is_empty()
            && !self.wal.is_dirty()
            && self.links.iter().all(|(&p, link)| {
                if p == Peer::Node(l.peer) {
                    link.buffered() == l.buffered
                } else {
                    !link.is_dirty()
                }
            })
    }

    /// A command waits for the acks of `acking`: their peers are told to send them.
    fn hurry(&mut self) {
        for &(_, peer) in &self.acking {
            if self.hurried.insert(peer) {
                if let Some(link) = self.links.get_mut(&Peer::Node(peer)) {
                    link.push(&Message::Hurry);
                }
            }
        }
    }

    /// Answers the pending driven `Transfer` once its coordinator has decided, and ends it
    /// once the coordinator is done with it.
    fn answer_pending(&mut self) -> io::Result<()> {
        let Some(p) = self.pending else { return Ok(()) };
        if !p.answered {
            let Some(outcome) = self.branch.decision(p.tx) else { return Ok(()) };
            let msg = self.decided(p.seq, p.tx, outcome);
            self.link(p.asker)?.push(&msg);
            self.pending = Some(Pending { answered: true, ..p });
        }
        if self.branch.finished(p.tx) {
            self.pending = None;
        } else if self.branch.applied(p.tx) {
            // Committed, and its own leg (the debit) is final: only the ack is to come.
            self.acking.push((p.tx, p.peer));
            self.pending = None;
        }
        Ok(())
    }

    /// The answer to the `Transfer` command number `seq`, once its coordinator (this
    /// node) has decided `tx`.
    fn decided(&self, seq: u64, tx: TxnId, outcome: TxOutcome) -> Message {
        let report = TxReport {
            sent: Vec::new(),
            decided: vec![(tx, outcome)],
            balance: self.branch.balance(),
            held: self.branch.held(),
            dropped: Vec::new(),
        };
        Message::Report { seq, report: Report::TxStep(report) }
    }

    /// Runs every command whose turn has come and that can run now.
    fn run_ready(&mut self) -> io::Result<()> {
        loop {
            if self.pending.is_some() || !self.following.is_empty() {
                return Ok(()); // a driven Transfer runs here; it ends first
            }
            match self.commands.front() {
                // Nothing a driven Transfer does depends on the acks still to come.
                Some(Some((_, Control::Transfer { drive: true, .. }))) => {}
                Some(Some((_, cmd))) if self.acking.is_empty() && self.can_run(cmd) => {}
                Some(Some(_)) => {
                    self.hurry();
                    return Ok(());
                }
                _ => return Ok(()),
            }
            let (from, cmd) = self.commands.pop_front().flatten().expect("checked above");
            self.next_seq += 1;
            let seq = self.next_seq - 1;
            let (answered, prediction) = (cmd.answered(), cmd.prediction());
            let Some(report) = self.execute(cmd, from, seq)? else {
                continue; // answered later, by answer_pending
            };
            if !answered && prediction.is_none_or(|p| p.holds(&report)) {
                continue; // the master knew, or needs nothing
            }
            let link = self.link(from)?;
            link.push(&Message::Report { seq, report });
            if link.is_full() {
                self.flush_all()?; // peers first: an answer never overtakes what it reports
            }
        }
    }

    fn queue_command(&mut self, seq: u64, from: Peer, cmd: Control) {
        let Some(at) = seq.checked_sub(self.next_seq).map(|i| i as usize) else {
            log::error!("node {}: command {seq} from {from} came twice; ignored", self.branch.id());
            return;
        };
        if self.commands.len() <= at {
            self.commands.resize_with(at + 1, || None);
        }
        if self.commands[at].replace((from, cmd)).is_some() {
            log::error!("node {}: two commands numbered {seq}; kept the later", self.branch.id());
        }
    }

    fn can_run(&self, cmd: &Control) -> bool {
        match cmd {
            Control::Receive { from, .. } | Control::Discard { from } => {
                self.arrived.get(from).is_some_and(|q| !q.is_empty())
            }
            Control::AddPeer { peer, .. } => self.links.contains_key(&Peer::Node(*peer)),
            Control::Collect { snapshots, wait: true } => self.has_whole(snapshots),
            Control::Resend { to, gen, .. } => {
                self.links.contains_key(&Peer::Node(*to))
                    && self.link_gen.get(to).copied().unwrap_or(0) >= *gen
            }
            _ => true,
        }
    }

    /// The armed crash point is reached: make what the step did so far visible (the log
    /// written, the messages in the peers' sockets), tell whoever gave the command that
    /// took the step, and die as SIGKILL would have it. What the log holds unforced is
    /// written but not synced: a killed process keeps it, as the page cache outlives the
    /// process.
    fn die(&mut self, cmd: Option<(Peer, u64)>, report: TxReport) -> ! {
        log::info!("node {}: reached {:?}, crashing", self.branch.id(), self.armed);
        let _ = self.flush_all();
        let costs = self.costs;
        if let Some((from, seq)) = cmd {
            if let Some(link) = self.links.get_mut(&from) {
                let _ = link.send(&Message::Report { seq, report: Report::Crashed(report, costs) });
                let _ = link.flush();
            }
        }
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        std::process::abort()
    }
}

#[cfg(test)]
mod tests;
