//! Three-phase commit of one transfer, at one node, as a pure machine: Skeen's protocol
//! ("Nonblocking Commit Protocols", SIGMOD 1981) with the termination protocol of
//! Bernstein, Hadzilacos and Goodman ("Concurrency Control and Recovery in Database
//! Systems", 1987, ch. 7).
//!
//! 1. The coordinator sends `Prepare`; each participant votes as escrow says, a YES
//!    forced (`Prepared`) first, as in two-phase commit.
//! 2. With every YES, the coordinator forces `PreCommitting` and sends `PreCommit` to each
//!    participant in id order; a participant forces `PreCommitted` and acks. No state is
//!    next to both commit and abort, which is what lets the others finish without the
//!    coordinator.
//! 3. With every ack, the coordinator forces its commit and sends `DoCommit` (the money
//!    itself when it is the debit side); the legs finish as in two-phase commit.
//!
//! A coordinator that does not hear an ack in time counts that participant as failed
//! and commits anyway. This is the textbook rule, safe only with a perfect failure
//! detector: under a partition or a pause the participant cut off runs the termination
//! protocol alone and aborts, and the transfer splits (`Check` says so).
//!
//! **Termination.** A participant that times out while uncertain (`Prepared`) or
//! pre-committed never decides alone: the participants it can reach elect the lowest id,
//! which asks every reachable one its state (`StateReq`, `State`) and decides (TR1–TR4):
//! any aborted ⇒ abort; any committed ⇒ commit; all uncertain ⇒ abort; some pre-committed
//! ⇒ pre-commit the rest, then commit. A node that restarts in doubt asks the others
//! (`DecisionReq`) and does not take part in a termination until it has learnt the
//! outcome, unless every node of the transfer can be reached.

use super::commit::Ctx;
use super::legs::{Legs, PartState};
use super::record::{ThreeRecord, TxRecord};
use crate::ids::{NodeId, TxnId};
use crate::wire::{AbortReason, CrashPoint, Protocol, ThreeMsg, TxMsg, TxOutcome, TxSpec, TxState};
use std::collections::{BTreeMap, BTreeSet};

mod termination;

/// A coordinator's view of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Coord {
    /// Waiting for votes; the set holds who voted YES.
    Voting(BTreeSet<NodeId>),
    /// `PreCommitting` forced; the set holds who acked the pre-commit.
    PreCommitting(BTreeSet<NodeId>),
    /// Commit forced; the set holds who acked the commit.
    Committed(BTreeSet<NodeId>),
    /// Aborted.
    Aborted,
    /// Commit applied everywhere.
    Ended,
}

/// A termination this node leads.
#[derive(Debug, Clone)]
struct Term {
    spec: TxSpec,
    reason: AbortReason,
    /// The states collected so far, this node's included.
    states: BTreeMap<NodeId, TxState>,
    /// Who has not answered yet (collecting), or not acked the pre-commit (TR4).
    waiting: BTreeSet<NodeId>,
    /// TR4: the rest are being pre-committed.
    pre_committing: bool,
}

/// The transactions this node runs by three-phase commit, in any role.
#[derive(Debug, Clone, Default)]
pub struct ThreePc {
    coords: BTreeMap<TxnId, (TxSpec, Coord)>,
    /// Legs pre-committed here.
    pre: BTreeSet<TxnId>,
    /// Terminations led here.
    terms: BTreeMap<TxnId, Term>,
    /// Outcomes this node knows (decided, or told).
    decided: BTreeMap<TxnId, (TxSpec, bool)>,
    /// Restarted in doubt: asks, and answers a `StateReq` only from a leader that reaches
    /// every node of the transfer, until it learns the outcome.
    recovering: BTreeSet<TxnId>,
    /// Answered a `StateReq` knowing nothing of the transaction: it never votes YES now.
    refused: BTreeSet<TxnId>,
}

impl ThreePc {
    /// Whether this node knows `tx` as a three-phase-commit transaction.
    pub fn knows(&self, tx: TxnId) -> bool {
        self.coords.contains_key(&tx)
            || self.decided.contains_key(&tx)
            || self.terms.contains_key(&tx)
            || self.refused.contains(&tx)
    }

    /// The transfer, as coordinator, leader or from a known outcome.
    pub fn spec(&self, tx: TxnId) -> Option<TxSpec> {
        self.coords
            .get(&tx)
            .map(|c| c.0)
            .or_else(|| self.terms.get(&tx).map(|t| t.spec))
            .or_else(|| self.decided.get(&tx).map(|d| d.0))
    }

    /// Whether this node's leg in `tx` is pre-committed (and not yet known committed).
    pub fn pre_committed(&self, tx: TxnId) -> bool {
        self.pre.contains(&tx) && !self.decided.contains_key(&tx)
    }

    /// The decision this node took or learnt.
    pub fn decision(&self, tx: TxnId) -> Option<TxOutcome> {
        match self.coords.get(&tx).map(|c| &c.1) {
            Some(Coord::Committed(_) | Coord::Ended) => return Some(TxOutcome::Committed),
            Some(Coord::Aborted) => return Some(TxOutcome::Aborted(AbortReason::NodeDown)),
            _ => {}
        }
        self.decided.get(&tx).map(|&(_, commit)| {
            if commit {
                TxOutcome::Committed
            } else {
                TxOutcome::Aborted(AbortReason::NodeDown)
            }
        })
    }

    /// Whether this node, as coordinator, is done with `tx`.
    pub fn finished(&self, tx: TxnId) -> bool {
        matches!(self.coords.get(&tx), Some((_, Coord::Aborted | Coord::Ended)))
    }

    /// A non-participant's state (a coordinator's, or an outcome it knows).
    pub fn state(&self, tx: TxnId) -> Option<TxState> {
        match self.coords.get(&tx).map(|c| &c.1) {
            Some(Coord::Voting(_)) => return Some(TxState::Voting),
            Some(Coord::PreCommitting(_)) => return Some(TxState::PreCommitted),
            Some(Coord::Committed(_) | Coord::Ended) => return Some(TxState::Committed),
            Some(Coord::Aborted) => return Some(TxState::Aborted),
            None => {}
        }
        self.decided.get(&tx).map(|d| if d.1 { TxState::Committed } else { TxState::Aborted })
    }

    /// Transactions decided here (as coordinator or leader) or learnt.
    pub fn decided(&self) -> impl Iterator<Item = &TxnId> {
        self.coords.keys().chain(self.decided.keys())
    }

    /// Transactions waited on here, beyond the legs in doubt: coordinating, leading a
    /// termination, recovering.
    pub fn waiting(&self) -> impl Iterator<Item = TxnId> + '_ {
        let coords = self.coords.iter().filter(|(_, (_, st))| {
            matches!(st, Coord::Voting(_) | Coord::PreCommitting(_) | Coord::Committed(_))
        });
        coords
            .map(|(tx, _)| *tx)
            .chain(self.terms.keys().copied())
            .chain(self.recovering.iter().copied())
    }

    /// What this node says its state is, in a termination.
    fn leg_state(&self, legs: &Legs, tx: TxnId) -> TxState {
        if let Some(&(_, commit)) = self.decided.get(&tx) {
            return if commit { TxState::Committed } else { TxState::Aborted };
        }
        match legs.part(tx) {
            Some(PartState::Committed | PartState::Prepared { commit_known: true }) => {
                TxState::Committed
            }
            Some(PartState::Aborted) => TxState::Aborted,
            Some(PartState::Prepared { .. }) if self.pre.contains(&tx) => TxState::PreCommitted,
            Some(PartState::Prepared { .. }) => TxState::Prepared,
            None => match self.coords.get(&tx).map(|c| &c.1) {
                Some(Coord::PreCommitting(_)) => TxState::PreCommitted,
                Some(Coord::Voting(_)) => TxState::Prepared,
                Some(Coord::Committed(_) | Coord::Ended) => TxState::Committed,
                Some(Coord::Aborted) => TxState::Aborted,
                None => TxState::None,
            },
        }
    }

    /// This node coordinates `spec`. Its own leg votes at once (held without a record:
    /// `PreCommitting` covers it); a NO aborts before anything leaves.
    pub(super) fn on_start(&mut self, legs: &mut Legs, cx: &mut Ctx, spec: TxSpec) {
        let mut yes = BTreeSet::new();
        if spec.participants().contains(&cx.me) {
            if let Some(reason) = legs.vote_on(spec) {
                cx.log(TxRecord::ThreePc(ThreeRecord::Decision { spec, commit: false }), false);
                self.coords.insert(spec.tx, (spec, Coord::Aborted));
                cx.decided(spec.tx, TxOutcome::Aborted(reason));
                return;
            }
            legs.take_prepared(spec, Protocol::ThreePc);
            yes.insert(cx.me);
        }
        self.coords.insert(spec.tx, (spec, Coord::Voting(yes)));
        for p in spec.participants() {
            if p != cx.me {
                cx.push_send(p, TxMsg::ThreePc(ThreeMsg::Prepare { spec }));
            }
        }
    }

    pub(super) fn on_message(&mut self, legs: &mut Legs, cx: &mut Ctx, from: NodeId, m: ThreeMsg) {
        match m {
            ThreeMsg::Prepare { spec } => self.on_prepare(legs, cx, spec),
            ThreeMsg::PreCommit { tx } => self.on_pre_commit(legs, cx, from, tx),
            ThreeMsg::PreCommitAck { tx } => self.on_pre_commit_ack(legs, cx, from, tx),
            ThreeMsg::DoCommit { tx } => self.on_decide(legs, cx, tx, true),
            ThreeMsg::DecisionReq { tx } => self.on_decision_req(legs, cx, from, tx),
            ThreeMsg::StateReq { tx, all } => {
                if self.recovering.contains(&tx) && !all {
                    return; // in recovery: it takes part only when every node does
                }
                if let Some((spec, Coord::Voting(_))) = self.coords.get(&tx).cloned() {
                    // A coordinator still voting aborts before it answers.
                    self.coordinator_abort(legs, cx, spec, AbortReason::Timeout, None);
                }
                let state = self.leg_state(legs, tx);
                if state == TxState::None {
                    self.refuse(cx, tx);
                }
                cx.send(from, TxMsg::ThreePc(ThreeMsg::State { tx, state }));
            }
            ThreeMsg::State { tx, state } => {
                let Some(t) = self.terms.get_mut(&tx) else { return };
                if t.pre_committing {
                    return;
                }
                t.states.insert(from, state);
                t.waiting.remove(&from);
                if t.waiting.is_empty() {
                    self.decide_termination(legs, cx, tx);
                }
            }
        }
    }

    /// Asked about a transfer it knows nothing of, this node aborts it: it never voted
    /// YES on it, and never will (see `on_decision_req`).
    fn refuse(&mut self, cx: &mut Ctx, tx: TxnId) {
        if self.refused.insert(tx) {
            cx.decided(tx, TxOutcome::Aborted(AbortReason::NodeDown));
        }
    }

    /// Participant, step 1.
    fn on_prepare(&mut self, legs: &mut Legs, cx: &mut Ctx, spec: TxSpec) {
        let tx = spec.tx;
        if let Some(st) = legs.part(tx) {
            let no = matches!(st, PartState::Aborted).then_some(AbortReason::Timeout);
            cx.send(spec.coord, TxMsg::Vote { tx, no });
            return;
        }
        if self.refused.contains(&tx) || self.decided.contains_key(&tx) {
            cx.send(spec.coord, TxMsg::Vote { tx, no: Some(AbortReason::Timeout) });
            return;
        }
        cx.point(CrashPoint::BeforeVote);
        let no = legs.vote_on(spec);
        if no.is_none() {
            cx.log(TxRecord::ThreePc(ThreeRecord::Prepared { spec }), true);
            legs.take_prepared(spec, Protocol::ThreePc);
        }
        cx.send(spec.coord, TxMsg::Vote { tx, no });
        if no.is_none() {
            cx.point(CrashPoint::AfterVote);
        }
    }

    /// Coordinator, step 2: every YES in, pre-commit (forced), `PreCommit` in id order.
    pub(super) fn on_vote(
        &mut self,
        legs: &mut Legs,
        cx: &mut Ctx,
        from: NodeId,
        tx: TxnId,
        no: Option<AbortReason>,
    ) {
        let Some((spec, Coord::Voting(yes))) = self.coords.get_mut(&tx) else { return };
        let spec = *spec;
        if let Some(reason) = no {
            self.coordinator_abort(legs, cx, spec, reason, Some(from));
            return;
        }
        yes.insert(from);
        if !spec.participants().iter().all(|p| yes.contains(p)) {
            return;
        }
        cx.point(CrashPoint::BeforePreCommit);
        cx.log(TxRecord::ThreePc(ThreeRecord::PreCommitting { spec }), true);
        let mut acked = BTreeSet::new();
        if spec.participants().contains(&cx.me) {
            self.pre.insert(tx);
            acked.insert(cx.me);
        }
        self.coords.insert(tx, (spec, Coord::PreCommitting(acked)));
        let remote: Vec<NodeId> = spec.participants().into_iter().filter(|&p| p != cx.me).collect();
        for (i, &p) in remote.iter().enumerate() {
            if i > 0 {
                cx.point(CrashPoint::MidPreCommit);
            }
            cx.push_send(p, TxMsg::ThreePc(ThreeMsg::PreCommit { tx }));
        }
        cx.point(CrashPoint::AfterPreCommit);
    }

    /// Participant (asked by the coordinator or a termination's leader): pre-commit.
    fn on_pre_commit(&mut self, legs: &mut Legs, cx: &mut Ctx, from: NodeId, tx: TxnId) {
        match legs.part(tx) {
            Some(PartState::Prepared { .. }) if !self.pre.contains(&tx) => {
                let spec = legs.spec(tx).expect("a part has its spec");
                cx.log(TxRecord::ThreePc(ThreeRecord::PreCommitted { spec }), true);
                self.pre.insert(tx);
                cx.send(from, TxMsg::ThreePc(ThreeMsg::PreCommitAck { tx }));
                cx.point(CrashPoint::AfterPreCommit);
            }
            Some(PartState::Prepared { .. }) => {
                cx.send(from, TxMsg::ThreePc(ThreeMsg::PreCommitAck { tx }))
            }
            // A participant that has finished ignores the protocol's messages.
            _ => {}
        }
    }

    fn on_pre_commit_ack(&mut self, legs: &mut Legs, cx: &mut Ctx, from: NodeId, tx: TxnId) {
        if let Some((spec, Coord::PreCommitting(acked))) = self.coords.get_mut(&tx) {
            acked.insert(from);
            let spec = *spec;
            if spec.participants().iter().all(|p| acked.contains(p)) {
                self.coordinator_commit(legs, cx, spec);
            }
            return;
        }
        if let Some(t) = self.terms.get_mut(&tx).filter(|t| t.pre_committing) {
            t.waiting.remove(&from);
            if t.waiting.is_empty() {
                let spec = t.spec;
                self.terminate(legs, cx, spec, true, AbortReason::NodeDown);
            }
        }
    }

    /// Coordinator, step 3: commit forced, then `DoCommit` (or the money).
    fn coordinator_commit(&mut self, legs: &mut Legs, cx: &mut Ctx, spec: TxSpec) {
        let tx = spec.tx;
        cx.point(CrashPoint::BeforeDecision);
        cx.log(TxRecord::ThreePc(ThreeRecord::Decision { spec, commit: true }), true);
        self.coords.insert(tx, (spec, Coord::Committed(BTreeSet::new())));
        self.decided.insert(tx, (spec, true));
        // A coordinator that recovered pre-committing and then heard every ack (late
        // ones, sent before its crash) asks no more.
        self.recovering.remove(&tx);
        cx.point(CrashPoint::AfterDecision);
        cx.decided(tx, TxOutcome::Committed);
        let remote: Vec<NodeId> = spec
            .participants()
            .into_iter()
            .filter(|&p| p != cx.me && !(p == spec.to && spec.from == cx.me))
            .collect();
        for (i, &p) in remote.iter().enumerate() {
            if i > 0 {
                cx.point(CrashPoint::MidCommit);
            }
            cx.push_send(p, TxMsg::ThreePc(ThreeMsg::DoCommit { tx }));
        }
        if spec.from == cx.me {
            // The commit record is this node's debit; its money tells the credit side.
            legs.debit(spec);
            cx.push_send(spec.to, spec.credit());
            cx.send(spec.coord, TxMsg::Ack { tx });
        } else if spec.to == cx.me && !legs.applied(tx) {
            legs.commit_known(spec);
        }
    }

    /// Coordinator: abort, telling every participant but the one whose NO decided it.
    fn coordinator_abort(
        &mut self,
        legs: &mut Legs,
        cx: &mut Ctx,
        spec: TxSpec,
        reason: AbortReason,
        voted_no: Option<NodeId>,
    ) {
        let tx = spec.tx;
        cx.log(TxRecord::ThreePc(ThreeRecord::Decision { spec, commit: false }), false);
        self.coords.insert(tx, (spec, Coord::Aborted));
        self.decided.insert(tx, (spec, false));
        self.recovering.remove(&tx);
        cx.decided(tx, TxOutcome::Aborted(reason));
        if matches!(legs.part(tx), Some(PartState::Prepared { .. })) {
            legs.release(spec);
            self.pre.remove(&tx);
        }
        let me = cx.me;
        for p in spec.participants().into_iter().filter(|&p| Some(p) != voted_no && p != me) {
            cx.push_send(p, TxMsg::Decide { tx, commit: false });
        }
    }

    /// A participant learns the outcome (`DoCommit`, a `Decide`, an inquiry's answer).
    pub(super) fn on_decide(&mut self, legs: &mut Legs, cx: &mut Ctx, tx: TxnId, commit: bool) {
        self.recovering.remove(&tx);
        let Some(spec) = legs.spec(tx) else {
            if let Some(spec) = self.spec(tx) {
                if !self.decided.contains_key(&tx) {
                    // A coordinator whose PreCommitting is logged must not wake up to it
                    // again: recovery would carry on towards a commit.
                    if matches!(self.coords.get(&tx), Some((_, Coord::PreCommitting(_)))) {
                        cx.log(TxRecord::ThreePc(ThreeRecord::Decision { spec, commit }), true);
                    }
                    self.learn(legs, spec, commit);
                }
            }
            return;
        };
        match (legs.part(tx), commit) {
            (Some(PartState::Prepared { .. }), true) => {
                self.learn(legs, spec, true);
                if spec.from == cx.me {
                    legs.commit_debit(cx, spec);
                } else {
                    legs.commit_known(spec);
                }
            }
            (Some(PartState::Prepared { .. }), false) => {
                self.learn(legs, spec, false);
                legs.abort_leg(cx, spec);
                if self.pre.remove(&tx) {
                    // PreCommitted is logged: the abort must outlive a crash, or recovery
                    // would report this leg committable to a termination.
                    let rec = ThreeRecord::Decision { spec, commit: false };
                    cx.log(TxRecord::ThreePc(rec), true);
                }
            }
            (Some(PartState::Committed), true) => {
                if !self.decided.contains_key(&tx) {
                    self.learn(legs, spec, true); // the money came first
                }
                cx.send(spec.coord, TxMsg::Ack { tx })
            }
            // Committed here and told abort, or the reverse: the split three-phase commit
            // reaches under a partition or a pause. What is logged stays.
            _ => {}
        }
    }

    /// This node learnt the outcome from another (a leader, or an inquiry's answer). A
    /// coordinator that had not decided follows it: committed, it collects the acks and
    /// sends the commit again when they are late; aborted, it is done.
    fn learn(&mut self, legs: &Legs, spec: TxSpec, commit: bool) {
        self.decided.insert(spec.tx, (spec, commit));
        // Knowing the outcome (from a Decide, or from the money itself), a recovered
        // node asks no more.
        self.recovering.remove(&spec.tx);
        if let Some((_, st)) = self.coords.get_mut(&spec.tx) {
            if matches!(st, Coord::Voting(_) | Coord::PreCommitting(_)) {
                // Its own leg, if applied already, has acked.
                let acks = BTreeSet::from_iter(legs.applied(spec.tx).then_some(legs.id));
                *st = if commit { Coord::Committed(acks) } else { Coord::Aborted };
            }
        }
    }

    /// The credit side applied the money, which only a commit sends.
    pub(super) fn credited(&mut self, legs: &Legs, tx: TxnId) {
        if let Some(spec) = legs.spec(tx).filter(|_| !self.decided.contains_key(&tx)) {
            self.learn(legs, spec, true);
        }
    }

    /// Coordinator: a participant has applied the commit. A coordinator still
    /// pre-committing (recovered, its commit decided by a termination) learns the commit
    /// from it: only a commit is acked.
    pub(super) fn on_ack(&mut self, legs: &Legs, cx: &mut Ctx, from: NodeId, tx: TxnId) {
        if let Some(&(spec, Coord::PreCommitting(_))) = self.coords.get(&tx) {
            cx.log(TxRecord::ThreePc(ThreeRecord::Decision { spec, commit: true }), true);
            self.learn(legs, spec, true);
        }
        let Some((spec, Coord::Committed(acks))) = self.coords.get_mut(&tx) else { return };
        acks.insert(from);
        if spec.participants().iter().all(|p| acks.contains(p)) {
            let spec = *spec;
            cx.log(TxRecord::End { tx }, false);
            self.coords.insert(tx, (spec, Coord::Ended));
        }
    }

    /// Someone asks for the outcome: whoever knows it says; a coordinator still voting
    /// aborts first; a node in doubt does not answer. A node that knows nothing of the
    /// transfer answers abort and will vote NO if its `Prepare` comes later: it never
    /// voted YES (so the transfer cannot commit), or it coordinated and lost its votes
    /// in a crash before `PreCommitting` (so no one is pre-committed, and no
    /// termination can commit).
    fn on_decision_req(&mut self, legs: &mut Legs, cx: &mut Ctx, from: NodeId, tx: TxnId) {
        if let Some((spec, Coord::Voting(_))) = self.coords.get(&tx).cloned() {
            self.coordinator_abort(legs, cx, spec, AbortReason::Timeout, None);
        }
        let known = match self.leg_state(legs, tx) {
            TxState::Committed => Some(true),
            TxState::Aborted => Some(false),
            TxState::None => {
                self.refuse(cx, tx);
                Some(false)
            }
            _ => None,
        };
        if let Some(commit) = known {
            cx.send(from, TxMsg::Decide { tx, commit });
        }
    }

    /// Replays a record of three-phase commit's.
    pub(super) fn replay(&mut self, legs: &mut Legs, rec: &ThreeRecord) {
        match *rec {
            ThreeRecord::Prepared { spec } => legs.take_prepared(spec, Protocol::ThreePc),
            ThreeRecord::PreCommitting { spec } => {
                let mut acked = BTreeSet::new();
                if spec.participants().contains(&legs.id) {
                    legs.take_prepared(spec, Protocol::ThreePc);
                    self.pre.insert(spec.tx);
                    acked.insert(legs.id);
                }
                self.coords.insert(spec.tx, (spec, Coord::PreCommitting(acked)));
            }
            ThreeRecord::PreCommitted { spec } => {
                self.pre.insert(spec.tx);
            }
            ThreeRecord::Decision { spec, commit } => {
                self.decided.insert(spec.tx, (spec, commit));
                let part = legs.part(spec.tx);
                if spec.coord == legs.id {
                    let st =
                        if commit { Coord::Committed(BTreeSet::new()) } else { Coord::Aborted };
                    self.coords.insert(spec.tx, (spec, st));
                    if commit && spec.from == legs.id && part != Some(PartState::Committed) {
                        if part.is_none() {
                            legs.take_prepared(spec, Protocol::ThreePc);
                        }
                        legs.debit(spec); // the coordinator's commit is its debit
                    }
                }
                match (part, commit) {
                    (Some(PartState::Prepared { .. }), false) => legs.release(spec),
                    (Some(PartState::Prepared { .. }), true) if spec.to == legs.id => {
                        legs.commit_known(spec)
                    }
                    _ => {}
                }
            }
        }
    }

    /// `End` replayed for a transaction this node coordinated.
    pub(super) fn end(&mut self, tx: TxnId) {
        if let Some(c) = self.coords.get_mut(&tx) {
            c.1 = Coord::Ended;
        }
    }

    /// After a restart: finish what was decided; ask about what was not (never decide
    /// alone); a pre-committing coordinator without a decision asks too.
    pub(super) fn recovered(&mut self, legs: &mut Legs, cx: &mut Ctx) {
        for tx in legs.in_doubt() {
            if legs.protocol(tx) != Protocol::ThreePc || self.decided.contains_key(&tx) {
                continue;
            }
            let spec = legs.spec(tx).expect("a part has its spec");
            self.recovering.insert(tx);
            let mut others = vec![spec.coord, spec.from, spec.to];
            others.sort();
            others.dedup();
            let me = cx.me;
            for n in others.into_iter().filter(|&n| n != me) {
                cx.push_send(n, TxMsg::ThreePc(ThreeMsg::DecisionReq { tx }));
            }
        }
        let coords: Vec<(TxSpec, Coord)> = self.coords.values().cloned().collect();
        for (spec, st) in coords {
            match st {
                Coord::PreCommitting(_) => {
                    self.recovering.insert(spec.tx);
                    let me = cx.me;
                    for p in spec.participants().into_iter().filter(|&p| p != me) {
                        cx.push_send(p, TxMsg::ThreePc(ThreeMsg::DecisionReq { tx: spec.tx }));
                    }
                }
                Coord::Committed(_) => {
                    cx.decided(spec.tx, TxOutcome::Committed);
                    let done = TxMsg::ThreePc(ThreeMsg::DoCommit { tx: spec.tx });
                    cx.tell_decision(spec, &BTreeSet::new(), true, done);
                    if legs.applied(spec.tx) {
                        self.on_ack(legs, cx, cx.me, spec.tx);
                    }
                }
                _ => {}
            }
        }
    }
}
