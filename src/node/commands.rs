//! The commands of the master and the observer at a node: queued by sequence number, run
//! strictly in that order (one whose input has not arrived waits, and so do the ones
//! after it), each against the branch, and answered unless the master predicted the
//! outcome.

use super::Node;
use crate::ids::{NodeId, SnapshotId, TxnId};
use crate::protocol::Effect;
use crate::wire::{ChannelMsg, Control, Hello, Message, Peer, Protocol, Report, TxSpec};
use std::collections::VecDeque;
use std::io;

/// Commands not run yet, with who sent them.
#[derive(Debug, Default)]
pub struct Commands {
    /// Slot `i` holds command `next + i`. The master and the observer both send commands,
    /// so one may arrive before an earlier one; its slot waits empty until then.
    queue: VecDeque<Option<(Peer, Control)>>,
    next: u64,
}

impl Commands {
    /// Files command `seq` from `from` in its slot.
    pub fn queue(&mut self, me: NodeId, seq: u64, from: Peer, cmd: Control) {
        let Some(at) = seq.checked_sub(self.next).map(|i| i as usize) else {
            log::error!("node {me}: command {seq} from {from} came twice; ignored");
            return;
        };
        if self.queue.len() <= at {
            self.queue.resize_with(at + 1, || None);
        }
        if self.queue[at].replace((from, cmd)).is_some() {
            log::error!("node {me}: two commands numbered {seq}; kept the later");
        }
    }

    /// The next command, if it has arrived.
    pub fn front(&self) -> Option<&Control> {
        self.queue.front().and_then(|c| c.as_ref()).map(|c| &c.1)
    }

    /// Takes the next command (the caller saw it arrived), with its number.
    fn pop(&mut self) -> (Peer, Control, u64) {
        let (from, cmd) = self.queue.pop_front().flatten().expect("the command has arrived");
        self.next += 1;
        (from, cmd, self.next - 1)
    }

    /// Whether no command waits (arrived or not).
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// How a command is answered.
enum Answer {
    /// Now, with this report (unless the master predicted it).
    Now(Report),
    /// Later: at its decision (a live or driven `Transfer`).
    Later,
}

impl Node {
    /// Runs every command whose turn has come and that can run now.
    pub(super) fn run_ready(&mut self) -> io::Result<()> {
        loop {
            if self.driven.blocks_commands() {
                return Ok(()); // a driven Transfer runs here; it ends first
            }
            let Some(cmd) = self.commands.front() else { return Ok(()) };
            // Nothing a driven Transfer does depends on the acks still to come.
            let driven = matches!(cmd, Control::Transfer { drive: true, .. });
            if !driven && (self.driven.acking() || !self.can_run(cmd)) {
                self.hurry()?;
                return Ok(());
            }
            let (from, cmd, seq) = self.commands.pop();
            let (answered, prediction) = (cmd.answered(), cmd.prediction());
            let Answer::Now(report) = self.execute(cmd, from, seq)? else { continue };
            if !answered && prediction.is_none_or(|p| p.holds(&report)) {
                continue; // the master knew, or needs nothing
            }
            self.outbox.push(from, &Message::Report { seq, report }, false)?;
        }
    }

    fn can_run(&self, cmd: &Control) -> bool {
        match cmd {
            Control::Receive { from, .. } | Control::Discard { from } => {
                self.channels.has_arrived(*from)
            }
            Control::AddPeer { peer, .. } => self.outbox.has(Peer::Node(*peer)),
            Control::Collect { snapshots, wait: true } => self.has_whole(snapshots),
            Control::Resend { to, gen, .. } => {
                self.outbox.has(Peer::Node(*to)) && self.channels.link_gen(*to) >= *gen
            }
            _ => true,
        }
    }

    /// Runs one command and carries out its effects.
    fn execute(&mut self, cmd: Control, from: Peer, seq: u64) -> io::Result<Answer> {
        let mut out = std::mem::take(&mut self.effects);
        let answer = self.command(cmd, from, seq, &mut out);
        let applied = self.apply(&mut out, Some((from, seq)));
        self.effects = out;
        let answer = answer?;
        applied?;
        if self.driven.pending() {
            // This command started it (none runs while one is pending): answered later.
            self.answer_pending()?;
            return Ok(Answer::Later);
        }
        Ok(answer)
    }

    /// One command against the branch; its effects go into `out`.
    fn command(
        &mut self,
        cmd: Control,
        from: Peer,
        seq: u64,
        out: &mut Vec<Effect>,
    ) -> io::Result<Answer> {
        let report = match cmd {
            Control::Setup { peers, join, down, resend, live } => {
                return self.setup(&peers, &join, &down, resend, live, out).map(Answer::Now)
            }
            Control::AddPeer { peer, join } => {
                self.branch.on_add_peer(peer, &join, out);
                Report::Ready(None)
            }
            Control::Send { to, amount, .. } => match self.branch.on_send(to, amount, out) {
                Ok(()) => Report::Sent,
                Err(_) => Report::ErrSend,
            },
            Control::Receive { from, .. } => self.receive(from, out),
            Control::Transfer { spec, drive, protocol } => {
                return Ok(self.transfer(&spec, drive, protocol, (from, seq), out))
            }
            Control::Discard { from } => {
                let lost = self.channels.take(from);
                log::info!("node {}: lost {lost:?} from {from}", self.branch.id());
                Report::Ready(None)
            }
            Control::ArmCrash { point } => {
                self.armed = Some(point);
                Report::Ready(None)
            }
            Control::Resend { to, msgs, .. } => {
                out.extend(msgs.into_iter().map(|msg| Effect::Send { to, msg }));
                Report::Ready(None)
            }
            Control::Timeout { tx, reason, reach } => {
                self.branch.on_timeout(tx, reason, &reach, out);
                Report::TxStep(self.tx_report(out))
            }
            Control::Ended => Report::Ended(self.branch.ended()),
            Control::Costs => Report::Costs(std::mem::take(&mut self.costs)),
            Control::Query { tx } => self.query(tx),
            Control::OpenAccount { name, amount } => {
                if !self.branch.on_open_account(name.clone(), amount, out) {
                    log::error!("node {}: account {name} exists here", self.branch.id());
                }
                Report::Ready(None)
            }
            Control::BeginSnapshot { snapshot } => {
                Report::Recorded { balance: self.branch.on_begin_snapshot(snapshot, out) }
            }
            Control::Collect { snapshots, .. } => {
                Report::Collected(self.branch.collect(&snapshots))
            }
            Control::Live { on } => self.live_on(on)?,
            Control::Load(order) => {
                self.start_load(from, order);
                Report::Ready(None)
            }
            Control::Quiet => self.quiet(),
        };
        Ok(Answer::Now(report))
    }

    /// `Setup`: link to the peers that are up and to the observer, join the running
    /// snapshots, send again what a peer lost (ahead of what recovery sends), and, after
    /// a restart, what recovery must send.
    fn setup(
        &mut self,
        peers: &[NodeId],
        join: &[SnapshotId],
        down: &[NodeId],
        resend: Vec<(NodeId, Vec<ChannelMsg>)>,
        live: bool,
        out: &mut Vec<Effect>,
    ) -> io::Result<Report> {
        self.set_live(live)?;
        for &p in peers.iter().filter(|p| !down.contains(p)) {
            self.connect(Peer::Node(p))?;
            if live {
                self.start_resync(p);
            }
        }
        for &p in down {
            self.channels.set_gone(p, true);
        }
        self.connect(Peer::Observer)?;
        self.branch.on_setup(peers, join, out);
        // Written now, ahead of what recovery sends, and not reported as new.
        for (to, msgs) in resend {
            for msg in msgs {
                self.send_to_peer(to, msg)?;
            }
        }
        Ok(match self.recovery.take() {
            Some(mut recovery) => {
                out.append(&mut recovery);
                Report::Ready(Some(self.tx_report(out)))
            }
            None => Report::Ready(None),
        })
    }

    /// Dials `peer` where the book says it listens.
    fn connect(&mut self, peer: Peer) -> io::Result<()> {
        let name = self.book.address(peer)?;
        let hello = Hello { nonce: self.nonce, from: Peer::Node(self.branch.id()) };
        self.outbox.connect(peer, &name, hello)?;
        if let Peer::Node(p) = peer {
            self.channels.linked(p);
        }
        Ok(())
    }

    /// `Receive`: the head of the channel from `from`, taken as the master predicted.
    fn receive(&mut self, from: NodeId, out: &mut Vec<Effect>) -> Report {
        let msg = self.channels.take(from).expect("can_run checked the channel");
        let commit = matches!(msg, ChannelMsg::Commit(_));
        let recorded = self.branch.on_deliver(from, msg.clone(), out);
        let tx = commit.then(|| self.tx_report(out));
        Report::Received { msg, recorded, tx }
    }

    /// `Transfer`: this node coordinates `spec`. In live mode, and when driven, it is
    /// answered at its decision (unless decided at once); in a script, stepwise, at once.
    fn transfer(
        &mut self,
        spec: &TxSpec,
        drive: bool,
        protocol: Protocol,
        asker: (Peer, u64),
        out: &mut Vec<Effect>,
    ) -> Answer {
        self.branch.on_start(spec, protocol, out);
        let report = self.tx_report(out);
        let decided = report.decided.iter().any(|d| d.0 == spec.tx);
        if self.live.on {
            if drive && !decided {
                self.live.asks.insert(spec.tx, asker);
                return Answer::Later;
            }
        } else if drive {
            self.drive(spec, asker, out);
        }
        Answer::Now(Report::TxStep(report))
    }

    /// `Query`: the money here, the state of `tx`, what this node waits on.
    fn query(&self, tx: Option<TxnId>) -> Report {
        Report::State {
            money: self.branch.money(),
            accounts: self.branch.accounts(),
            tx: tx.map(|t| self.branch.state(t)),
            waiting: self.branch.waiting(),
        }
    }
}
