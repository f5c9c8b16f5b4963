//! Two-phase commit of one transfer, at one node, as a pure machine.
//!
//! The protocol (Gray, "Notes on Data Base Operating Systems", 1978; presumed abort after
//! Mohan, Lindsay and Obermarck, "Transaction Management in the R* Distributed Database
//! Management System", TODS 1986), for `from` → `to` of `amount`, coordinated by `coord`:
//!
//! 1. The coordinator sends `Prepare` to both participants; each votes as escrow says
//!    (`legs`: only money decides a NO), a YES preceded by a forced `Prepared` record.
//! 2. With both YES, the coordinator forces `Decision{commit}` and sends `Decide` to the
//!    participants; with a NO (or a timeout while voting) it decides abort, logged lazily
//!    (presumed abort: no record means abort).
//! 3. The debit participant, on commit, forces `Committed` (the debit), and in the same
//!    step sends `Credit{amount}`, the only message that carries the money, to the credit
//!    participant; that one forces `Committed` (the credit) and acks the coordinator.
//!
//! Invariants: a YES is never taken back (a participant that voted YES never decides
//! alone: in doubt, it asks the coordinator with `DecisionReq`); a logged decision never
//! changes. It blocks: a coordinator that dies after the votes leaves its participants in
//! doubt until it is back (chapter 5's `IN-DOUBT`; `three_pc` and `paxos_commit` do not).
//!
//! When the coordinator is a participant too (the default: the debit node coordinates),
//! its own leg is not logged before the decision: a crash before `Decision` aborts, and
//! the forced `Decision` record doubles as the debit, so a committed two-node transfer
//! costs three sequential forced writes (credit side's `Prepared`, the `Decision`, the
//! credit side's `Committed`).

use super::commit::Ctx;
use super::legs::Legs;
use crate::ids::{Amount, NodeId, TxnId};
pub use crate::wire::{AbortReason, CrashPoint, TxMsg, TxOutcome as Outcome, TxSpec};
use std::collections::{BTreeMap, BTreeSet};

pub use super::commit::TxNode;
pub use super::effect::TxEffect;
pub use super::legs::PartState;
pub use super::record::TxRecord;

/// A coordinator's view of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordState {
    /// Waiting for votes; the set holds who voted YES.
    Voting(BTreeSet<NodeId>),
    /// Commit logged; the set holds who acked.
    Committed(BTreeSet<NodeId>),
    /// Aborted.
    Aborted(AbortReason),
    /// Commit applied everywhere.
    Ended,
}

/// The transactions this node coordinates by two-phase commit.
#[derive(Debug, Clone, Default)]
pub struct TwoPc {
    pub(super) coords: BTreeMap<TxnId, (TxSpec, CoordState)>,
}

impl TwoPc {
    /// The coordinator state of `tx` here, if any.
    pub fn coord(&self, tx: TxnId) -> Option<&CoordState> {
        self.coords.get(&tx).map(|c| &c.1)
    }

    /// The transfer of a transaction this node coordinates.
    pub fn spec(&self, tx: TxnId) -> Option<TxSpec> {
        self.coords.get(&tx).map(|c| c.0)
    }

    /// The decision this node took on `tx` as its coordinator, if any.
    pub fn decision(&self, tx: TxnId) -> Option<Outcome> {
        match self.coord(tx)? {
            CoordState::Voting(_) => None,
            CoordState::Committed(_) | CoordState::Ended => Some(Outcome::Committed),
            CoordState::Aborted(r) => Some(Outcome::Aborted(*r)),
        }
    }

    /// Transactions waited on here as their coordinator: voting, or missing acks.
    pub fn waiting(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.coords
            .iter()
            .filter(|(_, (_, st))| matches!(st, CoordState::Voting(_) | CoordState::Committed(_)))
            .map(|(tx, _)| *tx)
    }

    /// This node coordinates `spec`. Its own leg, if it has one, votes at once: a NO
    /// aborts before anything is sent; a YES holds the money without a record (the
    /// Decision record will cover it). Then `Prepare` goes to the others.
    pub(super) fn on_start(&mut self, legs: &mut Legs, cx: &mut Ctx, spec: TxSpec) {
        let mut yes = BTreeSet::new();
        if spec.participants().contains(&cx.me) {
            if let Some(reason) = legs.vote_on(spec) {
                cx.log(TxRecord::Decision { spec, commit: false }, false);
                self.coords.insert(spec.tx, (spec, CoordState::Aborted(reason)));
                cx.decided(spec.tx, Outcome::Aborted(reason));
                return;
            }
            legs.take_prepared(spec, crate::wire::Protocol::TwoPc);
            yes.insert(cx.me);
        }
        self.coords.insert(spec.tx, (spec, CoordState::Voting(yes)));
        for p in spec.participants() {
            if p != cx.me {
                cx.push_send(p, TxMsg::Prepare { spec });
            }
        }
    }

    /// Participant, step 1 (a remote coordinator asks).
    pub(super) fn on_prepare(&mut self, legs: &mut Legs, cx: &mut Ctx, spec: TxSpec) {
        let tx = spec.tx;
        if let Some(st) = legs.part(tx) {
            // A duplicated Prepare: repeat the vote already given (an aborted one is
            // decided, so the coordinator ignores it; the reason is never shown).
            let no = matches!(st, PartState::Aborted).then_some(AbortReason::Timeout);
            cx.send(spec.coord, TxMsg::Vote { tx, no });
            return;
        }
        cx.point(CrashPoint::BeforeVote);
        let no = legs.vote_on(spec);
        if no.is_none() {
            cx.log(TxRecord::Prepared { spec }, true);
            legs.take_prepared(spec, crate::wire::Protocol::TwoPc);
        }
        cx.send(spec.coord, TxMsg::Vote { tx, no });
        if no.is_none() {
            cx.point(CrashPoint::AfterVote);
        }
    }

    /// Coordinator, step 2.
    pub(super) fn on_vote(
        &mut self,
        legs: &mut Legs,
        cx: &mut Ctx,
        from: NodeId,
        tx: TxnId,
        no: Option<AbortReason>,
    ) {
        // A late vote after the decision changes nothing.
        let Some((spec, CoordState::Voting(yes))) = self.coords.get_mut(&tx) else { return };
        let spec = *spec;
        if let Some(reason) = no {
            self.decide_abort(cx, spec, reason, Some(from));
            return;
        }
        yes.insert(from);
        if !spec.participants().iter().all(|p| yes.contains(p)) {
            return;
        }
        cx.point(CrashPoint::BeforeDecision);
        cx.log(TxRecord::Decision { spec, commit: true }, true);
        self.coords.insert(tx, (spec, CoordState::Committed(BTreeSet::new())));
        cx.point(CrashPoint::AfterDecision);
        cx.decided(tx, Outcome::Committed);
        // When this node is the debit side, its Credit tells the credit side the decision.
        let remote: Vec<NodeId> = spec
            .participants()
            .into_iter()
            .filter(|&p| p != cx.me && !(p == spec.to && spec.from == cx.me))
            .collect();
        for (i, &p) in remote.iter().enumerate() {
            if i > 0 {
                cx.point(CrashPoint::MidCommit);
            }
            cx.push_send(p, TxMsg::Decide { tx, commit: true });
        }
        if spec.participants().contains(&cx.me) {
            // The Decision record is this node's own commit.
            apply_commit_locally(legs, cx, spec);
        }
    }

    /// Aborts `spec` and tells its participants, except `voted_no`: the participant whose
    /// NO decided it already aborted and holds nothing (so the last message of a transfer
    /// aborted by a NO is that vote).
    fn decide_abort(
        &mut self,
        cx: &mut Ctx,
        spec: TxSpec,
        reason: AbortReason,
        voted_no: Option<NodeId>,
    ) {
        let tx = spec.tx;
        cx.log(TxRecord::Decision { spec, commit: false }, false);
        self.coords.insert(tx, (spec, CoordState::Aborted(reason)));
        cx.decided(tx, Outcome::Aborted(reason));
        for p in spec.participants().into_iter().filter(|&p| Some(p) != voted_no) {
            cx.send(p, TxMsg::Decide { tx, commit: false });
        }
    }

    /// Participant, step 3 (and the answer to an inquiry).
    pub(super) fn on_decide(&mut self, legs: &mut Legs, cx: &mut Ctx, tx: TxnId, commit: bool) {
        let Some(st) = legs.part(tx) else { return };
        let spec = legs.spec(tx).expect("a part has its spec");
        if spec.coord == cx.me && commit {
            return; // its own commit was applied with the Decision record
        }
        match (st, commit) {
            (PartState::Prepared { .. }, true) if spec.from == cx.me => {
                legs.commit_debit(cx, spec);
            }
            // The credit side waits for the money itself.
            (PartState::Prepared { .. }, true) => legs.commit_known(spec),
            (PartState::Prepared { .. }, false) => legs.abort_leg(cx, spec),
            (PartState::Committed, true) => {
                if cx.relay && spec.from == cx.me && spec.to != cx.me {
                    // Told again: the money may not have arrived (a crash lost it).
                    cx.push_send(spec.to, spec.credit());
                }
                cx.send(spec.coord, TxMsg::Ack { tx })
            }
            (PartState::Committed, false) => {
                // Committed here, and the coordinator says abort: a bug elsewhere. A
                // peer's message never makes this node panic; the tests' builds stop.
                debug_assert!(false, "node {}: {tx} committed here; told abort", cx.me);
            }
            (PartState::Aborted, _) => {}
        }
    }

    /// Coordinator: a participant has applied the commit.
    pub(super) fn on_ack(&mut self, cx: &mut Ctx, from: NodeId, tx: TxnId) {
        let Some((spec, CoordState::Committed(acks))) = self.coords.get_mut(&tx) else { return };
        acks.insert(from);
        if spec.participants().iter().all(|p| acks.contains(p)) {
            let spec = *spec;
            cx.log(TxRecord::End { tx }, false);
            self.coords.insert(tx, (spec, CoordState::Ended));
        }
    }

    /// Coordinator: a participant in doubt asks. Unknown means abort (presumed abort); a
    /// transaction still voting is aborted first, so it can never commit after this answer.
    pub(super) fn on_decision_req(&mut self, cx: &mut Ctx, from: NodeId, tx: TxnId) {
        let commit = match self.coords.get(&tx).cloned() {
            Some((_, CoordState::Committed(_) | CoordState::Ended)) => true,
            Some((spec, CoordState::Voting(_))) => {
                self.decide_abort(cx, spec, AbortReason::Timeout, None);
                return;
            }
            Some((_, CoordState::Aborted(_))) => false,
            None => {
                // Presumed abort: no record means this coordinator never decided commit
                // (it may have crashed first). Say so, once, for whoever started it.
                let spec = TxSpec { tx, from, to: from, amount: Amount::ZERO, coord: cx.me };
                self.coords.insert(tx, (spec, CoordState::Aborted(AbortReason::NodeDown)));
                cx.decided(tx, Outcome::Aborted(AbortReason::NodeDown));
                false
            }
        };
        cx.send(from, TxMsg::Decide { tx, commit });
    }

    /// Time is up for `tx` here (in a script: nothing is deliverable and the other side is
    /// down). A coordinator still voting aborts with `reason`; a coordinator whose commit
    /// lacks acks sends the decision again; a participant in doubt asks again. A
    /// participant that voted YES never decides alone.
    pub(super) fn on_timeout(
        &mut self,
        legs: &mut Legs,
        cx: &mut Ctx,
        tx: TxnId,
        reason: AbortReason,
    ) {
        match self.coords.get(&tx).cloned() {
            Some((spec, CoordState::Voting(_))) => self.decide_abort(cx, spec, reason, None),
            Some((spec, CoordState::Committed(acks))) => resend_commit(cx, spec, &acks),
            _ => {}
        }
        match (legs.spec(tx), legs.part(tx)) {
            // Relaying: the credit side knows the commit and waits for the money, which a
            // crash may have lost; the decision, told to the debit side, has it sent again.
            (Some(spec), Some(PartState::Prepared { commit_known: true }))
                if cx.relay && spec.from != cx.me =>
            {
                cx.send(spec.from, TxMsg::Decide { tx, commit: true });
            }
            (Some(spec), Some(PartState::Prepared { .. })) if spec.coord != cx.me => {
                cx.push_send(spec.coord, TxMsg::DecisionReq { tx });
            }
            _ => {}
        }
    }

    /// Replays a record of two-phase commit's (the shared legs' records are replayed by
    /// `Legs::replay`).
    pub(super) fn replay(&mut self, legs: &mut Legs, rec: &TxRecord) {
        match *rec {
            TxRecord::Prepared { spec } => legs.take_prepared(spec, crate::wire::Protocol::TwoPc),
            TxRecord::Decision { spec, commit: true } => {
                self.coords.insert(spec.tx, (spec, CoordState::Committed(BTreeSet::new())));
                if spec.from == legs.id {
                    // No Prepared record for the coordinator's own leg: hold, then debit.
                    legs.take_prepared(spec, crate::wire::Protocol::TwoPc);
                    legs.debit(spec);
                } else if spec.to == legs.id {
                    legs.commit_known(spec);
                }
            }
            TxRecord::Decision { spec, commit: false } => {
                self.coords.insert(spec.tx, (spec, CoordState::Aborted(AbortReason::Timeout)));
                if matches!(legs.part(spec.tx), Some(PartState::Prepared { .. })) {
                    legs.release(spec);
                }
            }
            TxRecord::End { tx } => {
                if let Some(c) = self.coords.get_mut(&tx) {
                    c.1 = CoordState::Ended;
                }
            }
            _ => {}
        }
    }

    /// What a restarted node must do for two-phase commit, once its log is replayed: ask
    /// about every transaction in doubt, and finish every commit it decided and not ended
    /// (resending the decision, and the money when it is the debit side; both idempotent).
    pub(super) fn recovered(&mut self, legs: &mut Legs, cx: &mut Ctx) {
        for tx in legs.in_doubt() {
            let spec = legs.spec(tx).expect("a part has its spec");
            if legs.protocol(tx) == crate::wire::Protocol::TwoPc && spec.coord != cx.me {
                cx.push_send(spec.coord, TxMsg::DecisionReq { tx });
            }
        }
        for (&tx, (spec, st)) in &self.coords {
            if !matches!(st, CoordState::Committed(_)) {
                continue;
            }
            // Whoever started the transfer may not have heard the decision.
            cx.decided(tx, Outcome::Committed);
            resend_commit(cx, *spec, &BTreeSet::new());
        }
        // The coordinator's own leg, once applied, acks itself (acks are not logged).
        let own: Vec<TxnId> = self
            .coords
            .iter()
            .filter(|(tx, (_, st))| matches!(st, CoordState::Committed(_)) && legs.applied(**tx))
            .map(|(tx, _)| *tx)
            .collect();
        for tx in own {
            self.on_ack(cx, cx.me, tx);
        }
    }
}

/// The coordinator's own leg commits with its Decision record (no record of its own).
fn apply_commit_locally(legs: &mut Legs, cx: &mut Ctx, spec: TxSpec) {
    if spec.from == cx.me {
        legs.debit(spec);
        cx.push_send(spec.to, spec.credit());
        cx.send(spec.coord, TxMsg::Ack { tx: spec.tx });
    } else {
        legs.commit_known(spec);
    }
}

/// Coordinator `cx.me` finishing commit `spec`: the decision again to every other
/// participant that has not acked.
fn resend_commit(cx: &mut Ctx, spec: TxSpec, acks: &BTreeSet<NodeId>) {
    cx.tell_decision(spec, acks, true, TxMsg::Decide { tx: spec.tx, commit: true });
}

#[cfg(test)]
#[path = "two_pc_tests.rs"]
mod tests;
