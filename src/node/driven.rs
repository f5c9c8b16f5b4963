//! Driven transfers: a scripted two-party `Transfer` run node to node, its messages
//! delivered as they arrive instead of each by a master round trip, with the same result
//! and the same state after it as stepwise delivery.
//!
//! Its coordinator tells the other participant (`Message::Drive`, ahead of the `Prepare`
//! on the same link) and both deliver that transaction's messages as they arrive. The
//! coordinator answers the command as soon as it has decided (a commit is then logged,
//! as chapter 5's `COMMITTED` requires); neither node runs another command before it is
//! done with the transaction, so every later command sees it finished. The one
//! exception: a paying coordinator runs its next driven `Transfer` before the payee's ack
//! comes, and the payee holds that ack back with its sync until its next forced record
//! (`Outbox::defer_ack`); any other command waits for the ack and asks for it
//! (`Message::Hurry`). The master asks for driven transfers only when the channels
//! between the two are empty, so FIFO order is kept.
//!
//! Everything here asks the branch (`decision`, `finished`, `applied`, `done_with`): the
//! machines own the facts; this module only schedules. One exception: `drive` finds the
//! peer to tell among the start's effects (the two-phase `Prepare`; a coordinator that
//! votes NO itself sends none, and then nobody must follow).

use super::{lazy_ack, Node};
use crate::ids::{NodeId, TxnId};
use crate::protocol::Effect;
use crate::wire::{ChannelMsg, CommitMsg, Message, Peer, TwoPcMsg, TxSpec};
use std::collections::BTreeSet;
use std::io;

/// A driven `Transfer` at its coordinator.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Who asked, and the command's number.
    asker: (Peer, u64),
    tx: TxnId,
    /// The other participant: its messages of `tx` are delivered as they arrive.
    peer: NodeId,
    /// The answer (the decision) has gone.
    answered: bool,
}

/// The driven transfers a node is in.
#[derive(Debug, Default)]
pub struct Driven {
    /// Driven transactions whose other participant this node is and which still expect
    /// a message from it (its vote, or its ack), with their coordinator, in the order
    /// their `Drive` came. No command runs meanwhile.
    following: Vec<(TxnId, NodeId)>,
    /// The driven `Transfer` this node coordinates and has not answered yet (or, when
    /// its money comes to this node, is not done with). No command runs meanwhile.
    pending: Option<Pending>,
    /// Driven transactions this node coordinated and paid, answered and waiting only for
    /// the payee's ack, with that peer. Only another driven `Transfer` runs meanwhile.
    acking: Vec<(TxnId, NodeId)>,
    /// Peers of `acking` told to hurry (`Message::Hurry`): a command waits for them.
    hurried: BTreeSet<NodeId>,
}

impl Driven {
    /// `coord` drives `tx`, in which this node is the other participant.
    pub fn follow(&mut self, tx: TxnId, coord: NodeId) {
        self.following.push((tx, coord));
    }

    /// Whether a driven transaction runs here.
    pub fn is_active(&self) -> bool {
        self.pending.is_some() || !self.acking.is_empty() || !self.following.is_empty()
    }

    /// Whether no command may run: a driven transaction this node coordinates or follows
    /// is not over.
    pub fn blocks_commands(&self) -> bool {
        self.pending.is_some() || !self.following.is_empty()
    }

    /// Whether this node coordinates a driven `Transfer` not answered or not done.
    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether acks of driven transfers are still to come.
    pub fn acking(&self) -> bool {
        !self.acking.is_empty()
    }

    /// Whether a message of `tx` from `from` is delivered as it arrives: it belongs to
    /// the driven transaction this node coordinates, to one whose ack it waits for, or,
    /// when it coordinates none, to the first one it follows (a later one waits, as it
    /// would if the master delivered each transfer's messages in turn).
    fn delivers_now(&self, from: NodeId, tx: TxnId) -> bool {
        let current = match self.pending {
            Some(p) => (p.tx, p.peer) == (tx, from),
            None => self.following.first() == Some(&(tx, from)),
        };
        current || self.acking.contains(&(tx, from))
    }

    /// The peers whose channels may hold a message to deliver now.
    fn peers(&self) -> Vec<NodeId> {
        let pending = self.pending.map(|p| p.peer);
        let acking = self.acking.iter().map(|a| a.1);
        pending.into_iter().chain(acking).chain(self.following.first().map(|f| f.1)).collect()
    }
}

impl Node {
    /// Starts driving `spec` (just started here, effects in `out`): whoever gets its
    /// `Prepare` is told to follow, first, on the same link; the answer comes from
    /// `answer_pending` once decided.
    pub(super) fn drive(&mut self, spec: &TxSpec, asker: (Peer, u64), out: &[Effect]) {
        for e in out {
            if let Effect::Send { to, msg: ChannelMsg::Commit(CommitMsg::TwoPc(m)) } = e {
                if matches!(m, TwoPcMsg::Prepare { .. }) {
                    let _ =
                        self.outbox.push_plain(Peer::Node(*to), &Message::Drive { tx: spec.tx });
                }
            }
        }
        let me = self.branch.id();
        let peer = spec.participants().find(|&p| p != me).unwrap_or(me);
        self.driven.pending = Some(Pending { asker, tx: spec.tx, peer, answered: false });
    }

    /// Delivers, as `Receive` would, every head message that belongs to a driven
    /// transaction (see `delivers_now`); answers the pending `Transfer` once decided; and
    /// goes on with the next one once one ends.
    pub(super) fn deliver_driven(&mut self) -> io::Result<()> {
        while let Some((from, tx)) = self.next_driven() {
            let msg = self.channels.take(from).expect("the head was just seen");
            let idle = self.outbox.idle();
            let mut out = std::mem::take(&mut self.effects);
            self.branch.on_deliver(from, msg, &mut out);
            if self.branch.done_with(tx) {
                self.driven.following.retain(|&(t, _)| t != tx);
            }
            // With nothing else waiting to leave, a payee's ack may wait for the next
            // sync (see `Outbox::defer_ack`).
            let lazy = lazy_ack(&out).filter(|_| idle);
            self.apply(&mut out, None)?;
            self.effects = out;
            if let Some(peer) = lazy {
                self.outbox.defer_ack(peer)?;
            }
            let branch = &self.branch;
            self.driven.acking.retain(|&(t, _)| !branch.finished(t));
            let acking = &self.driven.acking;
            self.driven.hurried.retain(|p| acking.iter().any(|a| a.1 == *p));
            self.answer_pending()?;
        }
        Ok(())
    }

    /// The channel whose head belongs to a driven transaction, with that transaction.
    fn next_driven(&self) -> Option<(NodeId, TxnId)> {
        self.driven.peers().into_iter().find_map(|p| match self.channels.head(p)? {
            ChannelMsg::Commit(m) if self.driven.delivers_now(p, m.tx()) => Some((p, m.tx())),
            _ => None,
        })
    }

    /// A command waits for the acks of `acking`: their peers are told to send them.
    pub(super) fn hurry(&mut self) -> io::Result<()> {
        for &(_, peer) in &self.driven.acking {
            if self.driven.hurried.insert(peer) {
                let _ = self.outbox.push_plain(Peer::Node(peer), &Message::Hurry);
            }
        }
        Ok(())
    }

    /// Answers the pending driven `Transfer` once its coordinator has decided, and ends it
    /// once the coordinator is done with it.
    pub(super) fn answer_pending(&mut self) -> io::Result<()> {
        let Some(p) = self.driven.pending else { return Ok(()) };
        if !p.answered {
            let Some(outcome) = self.branch.decision(p.tx) else { return Ok(()) };
            let (asker, seq) = p.asker;
            let msg = self.decided(seq, p.tx, outcome);
            self.outbox.push_plain(asker, &msg)?;
            self.driven.pending = Some(Pending { answered: true, ..p });
        }
        if self.branch.finished(p.tx) {
            self.driven.pending = None;
        } else if self.branch.applied(p.tx) {
            // Committed, and its own part (the debit) is final: only the ack is to come.
            self.driven.acking.push((p.tx, p.peer));
            self.driven.pending = None;
        }
        Ok(())
    }
}
