//! What every commit protocol's participant does alike, written once: the account (its
//! balance and the money held), escrow reservations, the debit that sends the money in
//! one `Credit`, the credit applied once, the release of an abort, and the records of
//! these legs. `two_pc`, `three_pc` and `paxos_commit` decide *when*; this file is *how*.
//!
//! Reservations are amounts, not locks (O'Neil, "The Escrow Transactional Method", TODS
//! 1986): a debit side votes YES when its money not held by other unfinished transfers
//! covers the amount, and holds it; a credit side always votes YES. Money is in exactly
//! one place at a time: the debit balance (held), one `Credit` in flight, or the credit
//! balance, so a snapshot counts it once.

use super::commit::Ctx;
use super::effect::TxEffect;
use super::record::TxRecord;
use crate::ids::{Amount, NodeId, TxnId};
use crate::wire::{AbortReason, CrashPoint, Protocol, TxMsg, TxSpec, TxState};
use std::collections::{BTreeMap, BTreeSet};

/// A participant's view of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartState {
    /// Voted YES; holds the amount when it is the debit side. In doubt until decided.
    Prepared {
        /// The credit side learnt the commit and waits for the money.
        commit_known: bool,
    },
    /// The commit is applied here.
    Committed,
    /// Aborted here.
    Aborted,
}

/// A node's account and its legs in every transfer.
#[derive(Debug, Clone)]
pub struct Legs {
    pub(super) id: NodeId,
    /// All money the node owns, held money included.
    balance: Amount,
    /// Money reserved by prepared debits.
    held: Amount,
    parts: BTreeMap<TxnId, (TxSpec, PartState)>,
    /// The transactions of `parts` that are `Prepared`: this node's reservations (as a
    /// debit side, each holds its amount; as a credit side, it holds nothing).
    prepared: BTreeSet<TxnId>,
    /// The protocol of each leg that is not two-phase commit's.
    protocol: BTreeMap<TxnId, Protocol>,
}

impl Legs {
    /// A new account with nothing held.
    pub fn new(id: NodeId, balance: Amount) -> Legs {
        Legs {
            id,
            balance,
            held: Amount::ZERO,
            parts: BTreeMap::new(),
            prepared: BTreeSet::new(),
            protocol: BTreeMap::new(),
        }
    }

    /// All money the node owns, held money included.
    pub fn balance(&self) -> Amount {
        self.balance
    }

    /// Money reserved by prepared debits.
    pub fn held(&self) -> Amount {
        self.held
    }

    /// Money available to spend: the balance less what transactions hold.
    pub fn available(&self) -> Amount {
        self.balance.checked_sub(self.held).expect("held never exceeds balance")
    }

    /// A plain `Send` debits `amount` if it is available (held money is not).
    pub fn withdraw(&mut self, amount: Amount) -> bool {
        if amount > self.available() {
            return false;
        }
        self.balance = self.balance.checked_sub(amount).expect("checked above");
        true
    }

    /// A plain Transfer arrived.
    pub fn deposit(&mut self, amount: Amount) {
        self.balance = self.balance.checked_add(amount).expect("total money is bounded");
    }

    /// The participant state of `tx` here, if any.
    pub fn part(&self, tx: TxnId) -> Option<PartState> {
        self.parts.get(&tx).map(|p| p.1)
    }

    /// The transfer of `tx`, if this node is in it as a participant.
    pub fn spec(&self, tx: TxnId) -> Option<TxSpec> {
        self.parts.get(&tx).map(|p| p.0)
    }

    /// The protocol of this node's leg in `tx`.
    pub fn protocol(&self, tx: TxnId) -> Protocol {
        self.protocol.get(&tx).copied().unwrap_or_default()
    }

    /// Whether this participant applied `tx`: debited it, or credited it.
    pub fn applied(&self, tx: TxnId) -> bool {
        matches!(self.part(tx), Some(PartState::Committed))
    }

    /// Transactions this node voted YES on and has no decision for.
    pub fn in_doubt(&self) -> Vec<TxnId> {
        self.prepared.iter().copied().collect()
    }

    /// The state of this node's leg in `tx`, if it has one.
    pub fn state(&self, tx: TxnId) -> Option<TxState> {
        self.part(tx).map(|p| match p {
            PartState::Prepared { .. } => TxState::Prepared,
            PartState::Committed => TxState::Committed,
            PartState::Aborted => TxState::Aborted,
        })
    }

    /// Every leg that ended, with how.
    pub fn ended(&self) -> impl Iterator<Item = (TxnId, TxState)> + '_ {
        self.parts.iter().filter_map(|(&tx, &(_, st))| match st {
            PartState::Committed => Some((tx, TxState::Committed)),
            PartState::Aborted => Some((tx, TxState::Aborted)),
            PartState::Prepared { .. } => None,
        })
    }

    /// Transactions whose money `peer` owes this node as far as it knows: this node is
    /// their credit side, has voted YES and has not been credited.
    pub fn owed_by(&self, peer: NodeId) -> Vec<TxnId> {
        let owed = |tx: &&TxnId| {
            self.parts.get(tx).is_some_and(|(s, _)| s.from == peer && s.to == self.id)
        };
        self.prepared.iter().filter(owed).copied().collect()
    }

    /// The money of `tx` again, if this node is its debit side and has paid it (a copy
    /// may have died with a crashed process; the credit side applies it once).
    pub fn credit_again(&self, tx: TxnId) -> Option<(NodeId, TxMsg)> {
        match self.parts.get(&tx) {
            Some(&(spec, PartState::Committed)) if spec.from == self.id && spec.to != self.id => {
                Some((spec.to, spec.credit()))
            }
            _ => None,
        }
    }

    pub(super) fn set_part(&mut self, tx: TxnId, part: (TxSpec, PartState)) {
        if matches!(part.1, PartState::Prepared { .. }) {
            self.prepared.insert(tx);
        } else {
            self.prepared.remove(&tx);
        }
        self.parts.insert(tx, part);
    }

    /// This node's vote on `spec`: `None` for YES. Only money decides a NO (escrow): the
    /// debit side's money not held by its other unfinished transactions.
    pub(super) fn vote_on(&self, spec: TxSpec) -> Option<AbortReason> {
        if spec.from == self.id && spec.amount > self.available() {
            Some(AbortReason::InsufficientFunds)
        } else {
            None
        }
    }

    /// Voted YES on `spec` under `protocol`: the debit side holds the amount.
    pub(super) fn take_prepared(&mut self, spec: TxSpec, protocol: Protocol) {
        if spec.from == self.id {
            self.held = self.held.checked_add(spec.amount).expect("held is at most the balance");
        }
        if protocol != Protocol::TwoPc {
            self.protocol.insert(spec.tx, protocol);
        }
        self.set_part(spec.tx, (spec, PartState::Prepared { commit_known: false }));
    }

    /// The credit side knows the commit and waits for the money.
    pub(super) fn commit_known(&mut self, spec: TxSpec) {
        self.set_part(spec.tx, (spec, PartState::Prepared { commit_known: true }));
    }

    /// The debit side's money leaves (the hold is released into the debit).
    pub(super) fn debit(&mut self, spec: TxSpec) {
        self.held = self.held.checked_sub(spec.amount).expect("the debit was held");
        self.balance = self.balance.checked_sub(spec.amount).expect("held money is owned");
        self.set_part(spec.tx, (spec, PartState::Committed));
    }

    /// An abort releases the hold.
    pub(super) fn release(&mut self, spec: TxSpec) {
        if spec.from == self.id {
            self.held = self.held.checked_sub(spec.amount).expect("the debit was held");
        }
        self.set_part(spec.tx, (spec, PartState::Aborted));
    }

    /// The debit side applies a commit it learnt of (not its own decision): forced
    /// `Committed`, the debit, the money to the credit side, and the ack.
    pub(super) fn commit_debit(&mut self, cx: &mut Ctx, spec: TxSpec) {
        cx.log(TxRecord::Committed { spec }, true);
        self.debit(spec);
        cx.out.push(TxEffect::Send { to: spec.to, msg: spec.credit() });
        cx.point(CrashPoint::BeforeAck);
        cx.send(spec.coord, TxMsg::Ack { tx: spec.tx });
    }

    /// A participant learnt an abort: its hold (if any) is released, lazily logged.
    pub(super) fn abort_leg(&mut self, cx: &mut Ctx, spec: TxSpec) {
        if spec.coord != self.id {
            cx.log(TxRecord::Aborted { tx: spec.tx }, false);
        }
        self.release(spec);
    }

    /// Credit participant: the money arrives, and is applied once per transaction; the
    /// coordinator is acked. Money for a transfer this node never prepared, of another
    /// amount, or for one it aborted: with two-phase commit and Paxos Commit a bug
    /// elsewhere (ignored, never a panic on a peer's message; the tests' builds stop);
    /// with three-phase commit the split it can reach under a partition or a pause, and
    /// that money is lost (which `Check` shows).
    pub(super) fn on_credit(&mut self, cx: &mut Ctx, tx: TxnId, amount: Amount) {
        let Some(&(spec, st)) = self.parts.get(&tx) else {
            debug_assert!(false, "node {}: a credit for unknown {tx}", self.id);
            return;
        };
        if spec.amount != amount || st == PartState::Aborted {
            let split = self.protocol(tx) == Protocol::ThreePc && st == PartState::Aborted;
            debug_assert!(split, "node {}: a credit of {amount} for {tx} ({st:?})", self.id);
            if split && spec.amount == amount {
                cx.out.push(TxEffect::Dropped { tx, amount });
            }
            return;
        }
        if st == PartState::Committed {
            cx.send(spec.coord, TxMsg::Ack { tx }); // a duplicate: re-ack only
            return;
        }
        cx.log(TxRecord::Committed { spec }, true);
        self.balance = self.balance.checked_add(amount).expect("total money is bounded");
        self.set_part(tx, (spec, PartState::Committed));
        cx.point(CrashPoint::BeforeAck);
        cx.send(spec.coord, TxMsg::Ack { tx });
    }

    /// Replays a record of plain money or of a shared leg; other records are the
    /// protocols'. `Committed` of a debit leg debits; of a credit leg, credits.
    pub(super) fn replay(&mut self, rec: &TxRecord) {
        match *rec {
            TxRecord::Sent { amount, .. } => {
                self.balance = self.balance.checked_sub(amount).expect("a logged send was covered")
            }
            TxRecord::Deposited { amount, .. } => self.deposit(amount),
            TxRecord::Committed { spec } => {
                if self.applied(spec.tx) {
                    // Applied already by a protocol's own decision record.
                } else if spec.from == self.id {
                    self.debit(spec);
                } else {
                    self.balance = self.balance.checked_add(spec.amount).expect("bounded");
                    self.set_part(spec.tx, (spec, PartState::Committed));
                }
            }
            TxRecord::Aborted { tx } => {
                if let Some(&(spec, PartState::Prepared { .. })) = self.parts.get(&tx) {
                    self.release(spec);
                }
            }
            _ => {}
        }
    }
}
