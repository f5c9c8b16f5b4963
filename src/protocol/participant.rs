//! What every commit protocol's participant does alike, written once: its account, escrow
//! reservations, the commit of a paying part (the debit, then one `Credit` per payee),
//! the payments received (each applied once), the release of an abort, and the records of
//! these legs. `two_pc`, `three_pc` and `paxos_commit` decide *when*; this file is *how*.
//!
//! Reservations are amounts, not locks (O'Neil, "The Escrow Transactional Method", TODS
//! 1986): a paying part votes YES when its money not held by other unfinished
//! transactions covers what it pays, and holds it; a part that is paid always votes YES.
//! Money is in exactly one place at a time: the payer's balance (held), a `Credit` in
//! flight, or the payee's balance, so a snapshot counts it once.

use super::account::Accounts;
use super::effect::{Force, Out};
use super::record::{LegRecord, Record};
use crate::ids::{AccountName, Amount, NodeId, TxnId};
use crate::wire::{AbortReason, CommitMsg, CrashPoint, Protocol, TxSpec, TxState};
use std::collections::{BTreeMap, BTreeSet};

/// A participant's view of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegState {
    /// Voted YES; a payer holds what it pays. In doubt until decided.
    Prepared {
        /// A payee learnt the commit and waits for its money.
        commit_known: bool,
    },
    /// The commit is applied here (a payee: every payment has arrived).
    Committed,
    /// Aborted here.
    Aborted,
}

/// One leg: the transaction, its protocol, its state, the payers whose money came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Leg {
    spec: TxSpec,
    protocol: Protocol,
    state: LegState,
    paid_in: BTreeSet<NodeId>,
}

/// What a payment did when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credited {
    /// Applied (logged, forced); `complete`: the last one this part waited for.
    Applied {
        /// Every payment of this part is in: it is committed here.
        complete: bool,
    },
    /// It came before (or the part is committed): only the ack is due again.
    Again,
    /// Nothing applied: for a transaction this node aborted (a three-phase-commit split,
    /// the money lost) or never prepared (a bug elsewhere).
    Ignored,
}

/// A node's accounts and its legs in every transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Participant {
    id: NodeId,
    accounts: Accounts,
    legs: BTreeMap<TxnId, Leg>,
    /// The legs that are `Prepared`: this node's reservations, and what it is in doubt of.
    prepared: BTreeSet<TxnId>,
}

impl Participant {
    /// A node whose node account has `balance`, with no other account and no
    /// transaction.
    pub fn new(id: NodeId, balance: Amount) -> Participant {
        Participant {
            id,
            accounts: Accounts::new(balance),
            legs: BTreeMap::new(),
            prepared: BTreeSet::new(),
        }
    }

    /// This node.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's money: its node account and its named accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// `CreateAccount`: opens `name` with `amount` (new money); false if it exists here.
    pub fn open(&mut self, name: AccountName, amount: Amount) -> bool {
        self.accounts.open(name, amount)
    }

    /// A plain `Send` debits `amount` from the node account if it is available (held
    /// money is not).
    pub fn withdraw(&mut self, amount: Amount) -> bool {
        self.accounts.own_mut().withdraw(amount)
    }

    /// A plain Transfer arrived, for the node account.
    pub fn deposit(&mut self, amount: Amount) {
        self.accounts.own_mut().deposit(amount)
    }

    /// The state of this node's leg in `tx`, if it has one.
    pub fn state(&self, tx: TxnId) -> Option<LegState> {
        self.legs.get(&tx).map(|l| l.state)
    }

    /// The transaction of this node's leg in `tx`.
    pub fn spec(&self, tx: TxnId) -> Option<&TxSpec> {
        self.legs.get(&tx).map(|l| &l.spec)
    }

    /// The protocol of this node's leg in `tx`.
    pub fn protocol(&self, tx: TxnId) -> Option<Protocol> {
        self.legs.get(&tx).map(|l| l.protocol)
    }

    /// Whether this node's part of `tx` is committed here.
    pub fn applied(&self, tx: TxnId) -> bool {
        self.state(tx) == Some(LegState::Committed)
    }

    /// Whether this node has nothing more to do as a participant of `tx`: its part
    /// voted NO (and left nothing), ended, or never was.
    pub fn done_with(&self, tx: TxnId) -> bool {
        !matches!(self.state(tx), Some(LegState::Prepared { .. }))
    }

    /// Transactions this node voted YES on and has not finished.
    pub fn in_doubt(&self) -> Vec<TxnId> {
        self.prepared.iter().copied().collect()
    }

    /// The state of this node's leg in `tx`, in `TxStatus`'s words.
    pub fn tx_state(&self, tx: TxnId) -> Option<TxState> {
        self.state(tx).map(|p| match p {
            LegState::Prepared { .. } => TxState::Prepared,
            LegState::Committed => TxState::Committed,
            LegState::Aborted => TxState::Aborted,
        })
    }

    /// Every leg that ended, with how.
    pub fn ended(&self) -> impl Iterator<Item = (TxnId, TxState)> + '_ {
        self.legs.iter().filter_map(|(&tx, l)| match l.state {
            LegState::Committed => Some((tx, TxState::Committed)),
            LegState::Aborted => Some((tx, TxState::Aborted)),
            LegState::Prepared { .. } => None,
        })
    }

    /// Transactions whose money `peer` owes this node as far as it knows: this node
    /// voted YES, `peer` pays it, and that payment has not come.
    pub fn owed_by(&self, peer: NodeId) -> Vec<TxnId> {
        let owed = |tx: &&TxnId| {
            self.legs
                .get(tx)
                .is_some_and(|l| !l.paid_in.contains(&peer) && l.spec.pays_to(peer, self.id))
        };
        self.prepared.iter().filter(owed).copied().collect()
    }

    /// The payment of `tx` to `peer` again, if this node pays it and has paid (a copy
    /// may have died with a crashed process; the payee applies it once).
    pub fn paid_to(&self, tx: TxnId, peer: NodeId) -> Option<CommitMsg> {
        let l = self.legs.get(&tx).filter(|l| l.state == LegState::Committed)?;
        let p = l.spec.payments_from(self.id).into_iter().find(|p| p.to == peer)?;
        Some(CommitMsg::Credit { tx, amount: p.amount })
    }

    /// Whether a payment of `tx` from `from` arriving now would be new money here (a
    /// snapshot records it in the channel's state; a copy sent again is not).
    pub fn fresh_payment(&self, tx: TxnId, from: NodeId) -> bool {
        !self.legs.get(&tx).is_some_and(|l| l.paid_in.contains(&from))
    }

    /// This node's vote on `spec`: `None` for YES. Only money decides a NO (escrow, per
    /// account): each debit against its account's money not held by other transactions
    /// (what the transaction credits here does not count before it is applied).
    pub(super) fn vote(&self, spec: &TxSpec) -> Option<AbortReason> {
        let part = spec.part(self.id)?;
        (!self.accounts.covers(part.debits())).then_some(AbortReason::InsufficientFunds)
    }

    /// Voted YES on `spec` under `protocol`: every debit here is held.
    pub(super) fn prepare(&mut self, spec: &TxSpec, protocol: Protocol) {
        if let Some(part) = spec.part(self.id) {
            self.accounts.hold(part.debits());
        }
        let state = LegState::Prepared { commit_known: false };
        let leg = Leg { spec: spec.clone(), protocol, state, paid_in: BTreeSet::new() };
        self.legs.insert(spec.tx, leg);
        self.prepared.insert(spec.tx);
    }

    fn set(&mut self, tx: TxnId, state: LegState) {
        if let Some(l) = self.legs.get_mut(&tx) {
            l.state = state;
        }
        if matches!(state, LegState::Prepared { .. }) {
            self.prepared.insert(tx);
        } else {
            self.prepared.remove(&tx);
        }
    }

    /// A payee knows the commit and waits for its money.
    pub(super) fn commit_known(&mut self, tx: TxnId) {
        if matches!(self.state(tx), Some(LegState::Prepared { .. })) {
            self.set(tx, LegState::Prepared { commit_known: true });
        }
    }

    /// An abort releases the hold.
    pub(super) fn release(&mut self, tx: TxnId) {
        let Some(l) = self.legs.get(&tx) else { return };
        if matches!(l.state, LegState::Prepared { .. }) {
            if let Some(part) = l.spec.part(self.id) {
                self.accounts.release(part.debits());
            }
            self.set(tx, LegState::Aborted);
        }
    }

    /// A prepared part that does not wait for money commits: the hold leaves (a payer)
    /// and the payments go, in order. Returns false for a payee, which now waits for its
    /// money (`commit_known`).
    fn commit_part(&mut self, out: &mut Out, tx: TxnId) -> bool {
        let Some(l) = self.legs.get(&tx).filter(|l| matches!(l.state, LegState::Prepared { .. }))
        else {
            return false;
        };
        if l.spec.delta(self.id) > 0 {
            self.commit_known(tx);
            return false;
        }
        let spec = l.spec.clone();
        self.apply_own(&spec);
        self.set(tx, LegState::Committed);
        for p in spec.payments_from(self.id) {
            out.pay(tx, p);
        }
        true
    }

    /// The coordinator's own part commits with its forced decision record (no record of
    /// its own). Returns whether it is applied (else it waits for its money).
    pub(super) fn commit_with_decision(&mut self, out: &mut Out, tx: TxnId) -> bool {
        self.commit_part(out, tx)
    }

    /// A participant applies a commit it learnt of (not its own decision): a part that
    /// pays (or nothing) forces `Committed`, debits, sends its payments and reaches
    /// `before-ack`; a payee waits for its money. Returns whether it is applied (the
    /// protocol acks then).
    pub(super) fn commit_learnt(&mut self, out: &mut Out, tx: TxnId) -> bool {
        let Some(spec) = self.spec(tx).filter(|s| s.delta(self.id) <= 0).cloned() else {
            self.commit_known(tx);
            return false;
        };
        if !matches!(self.state(tx), Some(LegState::Prepared { .. })) {
            return false;
        }
        out.log(LegRecord::Committed { spec }, Force::Now);
        let applied = self.commit_part(out, tx);
        out.point(CrashPoint::BeforeAck);
        applied
    }

    /// A participant learnt an abort: its hold (if any) is released, lazily logged (the
    /// coordinator's own abort is its decision record).
    pub(super) fn abort(&mut self, out: &mut Out, tx: TxnId) {
        let Some(l) = self.legs.get(&tx) else { return };
        if l.spec.coord != self.id && matches!(l.state, LegState::Prepared { .. }) {
            out.log(LegRecord::Aborted { tx }, Force::Lazy);
        }
        self.release(tx);
    }

    /// A payment arrives: applied once per payer (forced first), the part committed once
    /// the last is in. Money for a transaction this node never prepared, of another
    /// amount, or for one it aborted: with two-phase commit and Paxos Commit a bug
    /// elsewhere (ignored, never a panic on a peer's message; the tests' builds stop);
    /// with three-phase commit the split it can reach under a partition or a pause, and
    /// that money is lost (which `Check` shows).
    pub(super) fn on_credit(
        &mut self,
        out: &mut Out,
        from: NodeId,
        tx: TxnId,
        amount: Amount,
    ) -> Credited {
        let me = self.id;
        let Some(l) = self.legs.get(&tx) else {
            debug_assert!(false, "node {me}: a credit for unknown {tx}");
            return Credited::Ignored;
        };
        let due = l.spec.payments_to(me).into_iter().find(|p| p.from == from);
        if due.map(|p| p.amount) != Some(amount) || l.state == LegState::Aborted {
            let split = l.protocol == Protocol::ThreePc && l.state == LegState::Aborted;
            debug_assert!(split, "node {me}: a credit of {amount} for {tx} ({:?})", l.state);
            if split && due.is_some_and(|p| p.amount == amount) {
                out.dropped(tx, amount);
            }
            return Credited::Ignored;
        }
        if l.state == LegState::Committed || l.paid_in.contains(&from) {
            return Credited::Again;
        }
        let spec = l.spec.clone();
        let complete =
            spec.payments_to(me).iter().all(|p| p.from == from || l.paid_in.contains(&p.from));
        // The ack that follows only lets a coordinator that paid this node forget the
        // transaction: its sync may wait for the next forced record.
        let force =
            if complete && spec.pays_to(spec.coord, me) { Force::Deferrable } else { Force::Now };
        out.log(LegRecord::Credited { spec, from }, force);
        self.receive(tx, from);
        if complete {
            out.point(CrashPoint::BeforeAck);
        }
        Credited::Applied { complete }
    }

    /// What this node's part does with its own money when it commits: its debits leave
    /// their accounts, and the credits they fund here arrive ([`TxSpec::fills`]).
    fn apply_own(&mut self, spec: &TxSpec) {
        let Some(part) = spec.part(self.id) else { return };
        self.accounts.debit_held(part.debits());
        for f in spec.fills(self.id).iter().filter(|f| f.from.is_none()) {
            self.accounts.credit(&f.key, f.amount);
        }
    }

    /// Payment `from` of `tx` is applied: the money lands on the accounts it fills, and
    /// the part is committed when it was the last (its own debits and credits with it).
    fn receive(&mut self, tx: TxnId, from: NodeId) {
        let me = self.id;
        let Some(l) = self.legs.get_mut(&tx) else { return };
        l.paid_in.insert(from);
        let all = l.spec.payments_to(me).iter().all(|p| l.paid_in.contains(&p.from));
        let spec = l.spec.clone();
        for f in spec.fills(me).iter().filter(|f| f.from == Some(from)) {
            self.accounts.credit(&f.key, f.amount);
        }
        if all {
            self.apply_own(&spec);
            self.set(tx, LegState::Committed);
        }
    }

    /// Replays a record of plain money or of a leg; the protocols replay their own.
    pub(super) fn replay(&mut self, rec: &Record) {
        match rec {
            Record::Sent { amount, .. } => {
                assert!(self.withdraw(*amount), "a logged send was covered")
            }
            Record::Deposited { amount, .. } => self.deposit(*amount),
            Record::AccountOpened { name, amount } => {
                self.open(name.clone(), *amount);
            }
            Record::Leg(LegRecord::Committed { spec }) => {
                self.adopt(spec, None);
                self.commit_part(&mut Out::new(self.id, false, &mut Vec::new()), spec.tx);
            }
            Record::Leg(LegRecord::Credited { spec, from }) => {
                self.adopt(spec, None);
                let due = spec.payments_to(self.id).into_iter().find(|p| p.from == *from);
                if due.is_some() && self.fresh_payment(spec.tx, *from) {
                    self.receive(spec.tx, *from);
                }
            }
            Record::Leg(LegRecord::Aborted { tx }) => self.release(*tx),
            _ => {}
        }
    }

    /// Replays a coordinator's own part committed by its decision record (it has no
    /// record of its own): held, then applied (a payee only learns the commit).
    pub(super) fn replay_commit(&mut self, spec: &TxSpec, protocol: Protocol) {
        self.adopt(spec, Some(protocol));
        self.commit_part(&mut Out::new(self.id, false, &mut Vec::new()), spec.tx);
    }

    /// A leg a replayed record implies: prepared under `protocol` (or, for a shared
    /// record, the protocol of whatever record made it), if it is not known yet.
    pub(super) fn adopt(&mut self, spec: &TxSpec, protocol: Option<Protocol>) {
        if !self.legs.contains_key(&spec.tx) {
            self.prepare(spec, protocol.unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::effect::Effect;
    use crate::wire::{ChannelMsg, Part};

    fn n(i: u32) -> NodeId {
        NodeId(i)
    }

    fn payroll() -> TxSpec {
        let parts = vec![Part::own(n(1), -60), Part::own(n(2), 10), Part::own(n(3), 50)];
        TxSpec { tx: TxnId(7), coord: n(1), parts }
    }

    // Escrow: a payer votes NO only when its money not held covers less than it pays.
    #[test]
    fn a_payer_votes_on_its_available_money() {
        let mut p = Participant::new(n(1), Amount(100));
        assert_eq!(p.vote(&payroll()), None);
        p.prepare(&payroll(), Protocol::TwoPc);
        assert_eq!(p.accounts().held(), Amount(60));
        let mut again = payroll();
        again.tx = TxnId(8);
        assert_eq!(p.vote(&again), Some(AbortReason::InsufficientFunds));
        assert_eq!(Participant::new(n(2), Amount(0)).vote(&payroll()), None);
    }

    // A payer's learnt commit: forced record, the debit, one credit per payee, then the
    // point before its ack.
    #[test]
    fn a_payer_commits_and_pays_each_payee() {
        let mut p = Participant::new(n(1), Amount(100));
        p.prepare(&payroll(), Protocol::TwoPc);
        let mut effects = Vec::new();
        assert!(p.commit_learnt(&mut Out::new(n(1), false, &mut effects), TxnId(7)));
        assert_eq!(p.accounts().total(), Amount(40));
        assert_eq!(p.accounts().held(), Amount::ZERO);
        let sends: Vec<(NodeId, Option<(TxnId, Amount)>)> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { to, msg: ChannelMsg::Commit(m) } => Some((*to, m.money())),
                _ => None,
            })
            .collect();
        assert_eq!(
            sends,
            vec![(n(2), Some((TxnId(7), Amount(10)))), (n(3), Some((TxnId(7), Amount(50))))]
        );
        assert!(matches!(effects[0], Effect::Log { force: Force::Now, .. }));
        assert_eq!(effects.last(), Some(&Effect::Point(CrashPoint::BeforeAck)));
    }

    // A payee is committed once its payment is in, and applies a copy only once.
    #[test]
    fn a_payment_is_applied_once() {
        let mut p = Participant::new(n(3), Amount(5));
        p.prepare(&payroll(), Protocol::TwoPc);
        let mut effects = Vec::new();
        let mut out = Out::new(n(3), false, &mut effects);
        assert_eq!(
            p.on_credit(&mut out, n(1), TxnId(7), Amount(50)),
            Credited::Applied { complete: true }
        );
        assert_eq!(p.on_credit(&mut out, n(1), TxnId(7), Amount(50)), Credited::Again);
        assert_eq!(p.accounts().total(), Amount(55));
        assert!(p.applied(TxnId(7)));
        assert!(!p.fresh_payment(TxnId(7), n(1)));
    }

    // Recovery from the leg records alone gives the same money.
    #[test]
    fn legs_replay_to_the_same_money() {
        let mut p = Participant::new(n(1), Amount(100));
        let mut effects = Vec::new();
        p.prepare(&payroll(), Protocol::TwoPc);
        p.commit_learnt(&mut Out::new(n(1), false, &mut effects), TxnId(7));
        let mut r = Participant::new(n(1), Amount(100));
        r.adopt(&payroll(), Some(Protocol::TwoPc));
        for e in &effects {
            if let Effect::Log { rec, .. } = e {
                r.replay(rec);
            }
        }
        assert_eq!(r, p);
    }
}
