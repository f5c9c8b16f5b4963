//! What the pure machines ask the world to do, in order: [`Effect`]s, pushed through an
//! [`Out`] (a node's whole step) or a [`Ctx`] (one commit protocol's step, which may also
//! send messages to its own node, handled at once after the step). A leaf module: every
//! machine imports it, it imports none of them.
//!
//! The order of effects is the contract (raft-rs's persist-then-send): a record pushed
//! with [`Force::Now`] is durable before any effect after it leaves the node.

use super::record::Record;
use crate::ids::{Amount, NodeId, TxnId};
use crate::wire::{ChannelMsg, CommitMsg, CrashPoint, Payment, TxOutcome, TxSpec};
use std::collections::{BTreeSet, VecDeque};

/// How durable a record must be before what follows it leaves the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Force {
    /// Written with the next sync: nothing that follows relies on it (an abort, under
    /// presumed abort; an `End`).
    Lazy,
    /// Durable before any later effect leaves: it backs a promise (a YES vote, a commit
    /// decision, a payment).
    Now,
    /// Durable before the messages after it leave, which only let a coordinator that
    /// has applied its own part forget the transaction (a payee's ack to the coordinator
    /// that paid it): the sync and those messages may wait together for the next forced
    /// record, so back-to-back transfers share one sync.
    Deferrable,
}

impl Force {
    /// Whether the record is forced at all.
    pub fn forced(self) -> bool {
        self != Force::Lazy
    }
}

/// Something a machine needs done outside itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Enqueue `msg` on the FIFO channel from this node to `to`, after everything
    /// enqueued before it.
    Send {
        /// The destination node.
        to: NodeId,
        /// The message.
        msg: ChannelMsg,
    },
    /// Append `rec` to the write-ahead log, as durable as `force` says.
    Log {
        /// The record.
        rec: Record,
        /// How durable before what follows.
        force: Force,
    },
    /// A crash point was reached (`CrashAt` kills the node here).
    Point(CrashPoint),
    /// This node decided `tx` (as its coordinator, a leader, or a learner that reports).
    Decided {
        /// The transaction.
        tx: TxnId,
        /// The decision.
        outcome: TxOutcome,
    },
    /// The payment of a transaction this node aborted arrived, and its money is gone: a
    /// three-phase commit that split (its coordinator committed). Nothing is done; the
    /// master's trace shows where the money went.
    Dropped {
        /// The transaction.
        tx: TxnId,
        /// The money it carried.
        amount: Amount,
    },
}

/// Where one node's step pushes its effects.
pub struct Out<'a> {
    /// This node.
    pub me: NodeId,
    /// Live mode's relaying (a payee that lacks its money tells the payer the decision,
    /// and a payer told again pays again: a crash may lose any message).
    pub relay: bool,
    effects: &'a mut Vec<Effect>,
}

impl<'a> Out<'a> {
    /// A step of node `me` pushing onto `effects`.
    pub fn new(me: NodeId, relay: bool, effects: &'a mut Vec<Effect>) -> Out<'a> {
        Out { me, relay, effects }
    }

    /// Enqueues `msg` on the channel to `to` (never this node).
    pub fn send(&mut self, to: NodeId, msg: impl Into<ChannelMsg>) {
        debug_assert_ne!(to, self.me, "a node has no channel to itself");
        self.effects.push(Effect::Send { to, msg: msg.into() });
    }

    /// Sends the money of `p` (this node pays it).
    pub fn pay(&mut self, tx: TxnId, p: Payment) {
        self.send(p.to, CommitMsg::Credit { tx, amount: p.amount });
    }

    /// Appends `rec` to the log.
    pub fn log(&mut self, rec: impl Into<Record>, force: Force) {
        self.effects.push(Effect::Log { rec: rec.into(), force });
    }

    /// A crash point is reached.
    pub fn point(&mut self, p: CrashPoint) {
        self.effects.push(Effect::Point(p));
    }

    /// This node decided `tx`.
    pub fn decided(&mut self, tx: TxnId, outcome: TxOutcome) {
        self.effects.push(Effect::Decided { tx, outcome });
    }

    /// A payment of `tx` came after this node aborted it.
    pub fn dropped(&mut self, tx: TxnId, amount: Amount) {
        self.effects.push(Effect::Dropped { tx, amount });
    }
}

/// One commit protocol's step at one node: the node's [`Out`], and the protocol's
/// messages from this node to itself (its own part's vote or ack, when it coordinates),
/// handled in order once the step is over.
pub struct Ctx<'a, M> {
    /// The node's effects.
    pub out: Out<'a>,
    local: VecDeque<M>,
}

impl<'a, M: Into<CommitMsg>> Ctx<'a, M> {
    /// A step pushing onto `out`.
    pub fn new(out: Out<'a>) -> Ctx<'a, M> {
        Ctx { out, local: VecDeque::new() }
    }

    /// This node.
    pub fn me(&self) -> NodeId {
        self.out.me
    }

    /// Sends `msg` to `to`: on the channel, or (to this node) at once after this step.
    pub fn send(&mut self, to: NodeId, msg: M) {
        if to == self.out.me {
            self.local.push_back(msg);
        } else {
            self.out.send(to, ChannelMsg::Commit(msg.into()));
        }
    }

    /// Sends `msg` on the channel to `to` (never this node).
    pub fn push_send(&mut self, to: NodeId, msg: M) {
        self.out.send(to, ChannelMsg::Commit(msg.into()));
    }

    /// The next message this node sent itself, if any.
    pub fn next_local(&mut self) -> Option<M> {
        self.local.pop_front()
    }

    /// Tells the outcome of `spec` (again) to every participant but this node and those
    /// in `acked`: as `decision`, or, for a commit, to a participant this node pays and
    /// has `paid` (its own part applied), as the money itself (a payment is applied once
    /// there, and only a commit sends one).
    pub fn tell_decision(
        &mut self,
        spec: &TxSpec,
        acked: &BTreeSet<NodeId>,
        commit: bool,
        paid: bool,
        decision: M,
    ) where
        M: Clone,
    {
        let me = self.out.me;
        let payments = spec.payments_from(me);
        for p in spec.participants() {
            if p == me || acked.contains(&p) {
                continue;
            }
            match payments.iter().find(|pay| pay.to == p).filter(|_| commit && paid) {
                Some(&pay) => self.out.pay(spec.tx, pay),
                None => self.push_send(p, decision.clone()),
            }
        }
    }
}
