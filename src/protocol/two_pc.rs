//! Two-phase commit, at one node, as a pure machine.
//!
//! The protocol (Gray, "Notes on Data Base Operating Systems", 1978; presumed abort after
//! Mohan, Lindsay and Obermarck, "Transaction Management in the R* Distributed Database
//! Management System", TODS 1986), for a transaction of any number of parts coordinated
//! by `coord`:
//!
//! 1. The coordinator sends `Prepare` to every other participant; each votes as escrow
//!    says (`participant`: only money decides a NO), a YES preceded by a forced
//!    `Prepared` record.
//! 2. With every YES, the coordinator forces `Decision{commit}` and sends `Decide` to the
//!    participants (a participant it pays learns the commit from the money itself); with a
//!    NO (or a timeout while voting) it decides abort, logged lazily (presumed abort: no
//!    record means abort).
//! 3. A paying participant, on commit, forces `Committed` (its debit) and in the same step
//!    sends each payee its `Credit`, the only message that carries the money; a payee
//!    forces each payment as it arrives, and once all are in acks the coordinator.
//!
//! Invariants: a YES is never taken back (a participant that voted YES never decides
//! alone: in doubt, it asks the coordinator with `DecisionReq`); a logged decision never
//! changes. It blocks: a coordinator that dies after the votes leaves its participants in
//! doubt until it is back (chapter 5's `IN-DOUBT`; `three_pc` and `paxos_commit` do not).
//!
//! When the coordinator is a participant too (the default: the first paying node
//! coordinates), its own part is not logged before the decision: a crash before
//! `Decision` aborts, and the forced `Decision` record doubles as its debit, so a
//! committed two-node transfer costs three sequential forced writes (the payee's
//! `Prepared`, the `Decision`, the payee's `Credited`).

use super::commit::{CommitProtocol, Facts};
use super::effect::{Ctx, Force};
use super::participant::{Credited, LegState, Participant};
use super::record::{Record, TwoPcRecord};
use crate::ids::{Amount, NodeId, TxnId};
use crate::wire::{AbortReason, CrashPoint, Part, Protocol, TwoPcMsg, TxOutcome, TxSpec, TxState};
use std::collections::{BTreeMap, BTreeSet};

type Cx<'a> = Ctx<'a, TwoPcMsg>;

/// A coordinator's view of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// The transactions this node coordinates by two-phase commit (its participants' legs
/// are the [`Participant`]'s).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TwoPc {
    coords: BTreeMap<TxnId, (TxSpec, CoordState)>,
}

impl TwoPc {
    /// The coordinator state of `tx` here, if any.
    pub fn coord(&self, tx: TxnId) -> Option<&CoordState> {
        self.coords.get(&tx).map(|c| &c.1)
    }

    /// With every YES in, the coordinator decides commit.
    fn count_votes(&mut self, part: &mut Participant, cx: &mut Cx, tx: TxnId) {
        let Some((spec, CoordState::Voting(yes))) = self.coords.get(&tx) else { return };
        if spec.participants().all(|p| yes.contains(&p)) {
            let spec = spec.clone();
            self.decide_commit(part, cx, spec);
        }
    }

    /// Step 2, commit: forced decision, `Decide` to every participant this node does not
    /// pay (in part order), then its own part, which the decision record covers.
    fn decide_commit(&mut self, part: &mut Participant, cx: &mut Cx, spec: TxSpec) {
        let (tx, me) = (spec.tx, cx.me());
        cx.out.point(CrashPoint::BeforeDecision);
        cx.out.log(TwoPcRecord::Decision { spec: spec.clone(), commit: true }, Force::Now);
        self.coords.insert(tx, (spec.clone(), CoordState::Committed(BTreeSet::new())));
        cx.out.point(CrashPoint::AfterDecision);
        cx.out.decided(tx, TxOutcome::Committed);
        let remote: Vec<NodeId> =
            spec.participants().filter(|&p| p != me && !spec.pays_to(me, p)).collect();
        for (i, &p) in remote.iter().enumerate() {
            if i > 0 {
                cx.out.point(CrashPoint::MidCommit);
            }
            cx.push_send(p, TwoPcMsg::Decide { tx, commit: true });
        }
        if spec.is_participant(me) && part.commit_with_decision(&mut cx.out, tx) {
            cx.send(me, TwoPcMsg::Ack { tx });
        }
    }

    /// Aborts `spec` and tells its participants, except `voted_no`: the participant whose
    /// NO decided it already aborted and holds nothing (so the last message of a
    /// transaction aborted by a NO is that vote).
    fn decide_abort(
        &mut self,
        cx: &mut Cx,
        spec: TxSpec,
        reason: AbortReason,
        voted_no: Option<NodeId>,
    ) {
        let tx = spec.tx;
        cx.out.log(TwoPcRecord::Decision { spec: spec.clone(), commit: false }, Force::Lazy);
        cx.out.decided(tx, TxOutcome::Aborted(reason));
        for p in spec.participants().filter(|&p| Some(p) != voted_no) {
            cx.send(p, TwoPcMsg::Decide { tx, commit: false });
        }
        self.coords.insert(tx, (spec, CoordState::Aborted(reason)));
    }

    /// Participant, step 1 (a remote coordinator asks).
    fn on_prepare(&mut self, part: &mut Participant, cx: &mut Cx, spec: TxSpec) {
        let tx = spec.tx;
        if let Some(st) = part.state(tx) {
            // A duplicated Prepare: repeat the vote already given (an aborted one is
            // decided, so the coordinator ignores it; the reason is never shown).
            let no = (st == LegState::Aborted).then_some(AbortReason::Timeout);
            cx.send(spec.coord, TwoPcMsg::Vote { tx, no });
            return;
        }
        cx.out.point(CrashPoint::BeforeVote);
        let no = part.vote(&spec);
        if no.is_none() {
            cx.out.log(TwoPcRecord::Prepared { spec: spec.clone() }, Force::Now);
            part.prepare(&spec, Protocol::TwoPc);
        }
        cx.send(spec.coord, TwoPcMsg::Vote { tx, no });
        if no.is_none() {
            cx.out.point(CrashPoint::AfterVote);
        }
    }

    /// Coordinator, step 2.
    fn on_vote(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        from: NodeId,
        tx: TxnId,
        no: Option<AbortReason>,
    ) {
        // A late vote after the decision changes nothing.
        let Some((spec, CoordState::Voting(yes))) = self.coords.get_mut(&tx) else { return };
        if let Some(reason) = no {
            let spec = spec.clone();
            self.decide_abort(cx, spec, reason, Some(from));
            return;
        }
        yes.insert(from);
        self.count_votes(part, cx, tx);
    }

    /// Participant, step 3 (and the answer to an inquiry).
    fn on_decide(&mut self, part: &mut Participant, cx: &mut Cx, tx: TxnId, commit: bool) {
        let (Some(st), Some(spec)) = (part.state(tx), part.spec(tx).cloned()) else { return };
        let me = cx.me();
        if spec.coord == me && commit {
            return; // its own commit was applied with the Decision record
        }
        match (st, commit) {
            (LegState::Prepared { .. }, true) => {
                if part.commit_learnt(&mut cx.out, tx) {
                    cx.send(spec.coord, TwoPcMsg::Ack { tx });
                }
            }
            (LegState::Prepared { .. }, false) => part.abort(&mut cx.out, tx),
            (LegState::Committed, true) => {
                if cx.out.relay {
                    // Told again: the money may not have arrived (a crash lost it).
                    for p in spec.payments_from(me) {
                        cx.out.pay(tx, p);
                    }
                }
                cx.send(spec.coord, TwoPcMsg::Ack { tx })
            }
            (LegState::Committed, false) => {
                // Committed here, and the coordinator says abort: a bug elsewhere. A
                // peer's message never makes this node panic; the tests' builds stop.
                debug_assert!(false, "node {me}: {tx} committed here; told abort");
            }
            (LegState::Aborted, _) => {}
        }
    }

    /// Coordinator: a participant has applied the commit.
    fn on_ack(&mut self, cx: &mut Cx, from: NodeId, tx: TxnId) {
        let Some((spec, CoordState::Committed(acks))) = self.coords.get_mut(&tx) else { return };
        acks.insert(from);
        if spec.participants().all(|p| acks.contains(&p)) {
            cx.out.log(TwoPcRecord::End { tx }, Force::Lazy);
            self.coords.get_mut(&tx).expect("matched above").1 = CoordState::Ended;
        }
    }

    /// Coordinator: a participant in doubt asks. Unknown means abort (presumed abort); a
    /// transaction still voting is aborted first, so it can never commit after this answer.
    fn on_decision_req(&mut self, cx: &mut Cx, from: NodeId, tx: TxnId) {
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
                let parts = vec![Part::own(from, 0)];
                let spec = TxSpec { tx, coord: cx.me(), parts };
                self.coords.insert(tx, (spec, CoordState::Aborted(AbortReason::NodeDown)));
                cx.out.decided(tx, TxOutcome::Aborted(AbortReason::NodeDown));
                false
            }
        };
        cx.send(from, TwoPcMsg::Decide { tx, commit });
    }
}

impl CommitProtocol for TwoPc {
    type Msg = TwoPcMsg;
    const PROTOCOL: Protocol = Protocol::TwoPc;

    /// This node coordinates `spec`. Its own part, if it has one, votes at once: a NO
    /// aborts before anything is sent; a YES holds the money without a record (the
    /// Decision record will cover it). Then `Prepare` goes to the others.
    fn start(&mut self, part: &mut Participant, cx: &mut Cx, spec: &TxSpec, _nodes: &[NodeId]) {
        let (tx, me) = (spec.tx, cx.me());
        let mut yes = BTreeSet::new();
        if spec.is_participant(me) {
            if let Some(reason) = part.vote(spec) {
                let rec = TwoPcRecord::Decision { spec: spec.clone(), commit: false };
                cx.out.log(rec, Force::Lazy);
                self.coords.insert(tx, (spec.clone(), CoordState::Aborted(reason)));
                cx.out.decided(tx, TxOutcome::Aborted(reason));
                return;
            }
            part.prepare(spec, Protocol::TwoPc);
            yes.insert(me);
        }
        self.coords.insert(tx, (spec.clone(), CoordState::Voting(yes)));
        for p in spec.participants().filter(|&p| p != me) {
            cx.push_send(p, TwoPcMsg::Prepare { spec: spec.clone() });
        }
        self.count_votes(part, cx, tx);
    }

    fn on_message(&mut self, part: &mut Participant, cx: &mut Cx, from: NodeId, msg: TwoPcMsg) {
        match msg {
            TwoPcMsg::Prepare { spec } => self.on_prepare(part, cx, spec),
            TwoPcMsg::Vote { tx, no } => self.on_vote(part, cx, from, tx, no),
            TwoPcMsg::Decide { tx, commit } => self.on_decide(part, cx, tx, commit),
            TwoPcMsg::Ack { tx } => self.on_ack(cx, from, tx),
            TwoPcMsg::DecisionReq { tx } => self.on_decision_req(cx, from, tx),
        }
    }

    /// A payee's money: applied once; the coordinator acked once all of it is in.
    fn on_credit(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        from: NodeId,
        tx: TxnId,
        amount: Amount,
    ) {
        match part.on_credit(&mut cx.out, from, tx, amount) {
            Credited::Applied { complete: true } => {}
            Credited::Again if part.applied(tx) => {}
            _ => return,
        }
        let coord = part.spec(tx).expect("a credited leg").coord;
        cx.send(coord, TwoPcMsg::Ack { tx });
    }

    /// Time is up for `tx` here (in a script: nothing is deliverable and a node it waits
    /// on is down). A coordinator still voting aborts with `reason`; a coordinator whose
    /// commit lacks acks sends the decision again; a participant in doubt asks again. A
    /// participant that voted YES never decides alone.
    fn on_timeout(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        tx: TxnId,
        reason: AbortReason,
        _reach: &[NodeId],
    ) {
        match self.coords.get(&tx).cloned() {
            Some((spec, CoordState::Voting(_))) => self.decide_abort(cx, spec, reason, None),
            Some((spec, CoordState::Committed(acks))) => {
                let paid = part.applied(tx);
                cx.tell_decision(&spec, &acks, true, paid, TwoPcMsg::Decide { tx, commit: true })
            }
            _ => {}
        }
        let me = cx.me();
        match (part.spec(tx).cloned(), part.state(tx)) {
            // Relaying: a payee knows the commit and waits for money, which a crash may
            // have lost; the decision, told to its payers, has it sent again.
            (Some(spec), Some(LegState::Prepared { commit_known: true })) if cx.out.relay => {
                for p in spec.payments_to(me).into_iter().filter(|p| part.fresh_payment(tx, p.from))
                {
                    cx.send(p.from, TwoPcMsg::Decide { tx, commit: true });
                }
            }
            (Some(spec), Some(LegState::Prepared { .. })) if spec.coord != me => {
                cx.push_send(spec.coord, TwoPcMsg::DecisionReq { tx });
            }
            _ => {}
        }
    }

    /// A peer's process is gone: the votes this node waits for from it will not come.
    fn on_peer_gone(&mut self, _part: &mut Participant, cx: &mut Cx, peer: NodeId) {
        let voting: Vec<TxSpec> = self
            .coords
            .values()
            .filter(|(s, st)| matches!(st, CoordState::Voting(_)) && s.members().contains(&peer))
            .map(|(s, _)| s.clone())
            .collect();
        for spec in voting {
            self.decide_abort(cx, spec, AbortReason::NodeDown, None);
        }
    }

    fn replay(&mut self, part: &mut Participant, rec: &Record) {
        let Record::TwoPc(rec) = rec else { return };
        let me = part.id();
        match rec {
            TwoPcRecord::Prepared { spec } => part.prepare(spec, Protocol::TwoPc),
            TwoPcRecord::Decision { spec, commit: true } => {
                let state = CoordState::Committed(BTreeSet::new());
                self.coords.insert(spec.tx, (spec.clone(), state));
                if spec.is_participant(me) {
                    // No Prepared record for the coordinator's own part: hold, then commit.
                    part.replay_commit(spec, Protocol::TwoPc);
                }
            }
            TwoPcRecord::Decision { spec, commit: false } => {
                let state = CoordState::Aborted(AbortReason::Timeout);
                self.coords.insert(spec.tx, (spec.clone(), state));
                part.release(spec.tx);
            }
            TwoPcRecord::End { tx } => {
                if let Some(c) = self.coords.get_mut(tx) {
                    c.1 = CoordState::Ended;
                }
            }
        }
    }

    /// What a restarted node must do for two-phase commit, once its log is replayed: ask
    /// about every transaction in doubt, and finish every commit it decided and not ended
    /// (resending the decision, and the money when it pays; both idempotent).
    fn recovered(&mut self, part: &mut Participant, cx: &mut Cx) {
        let me = cx.me();
        for tx in part.in_doubt() {
            let spec = part.spec(tx).expect("a leg has its spec");
            if part.protocol(tx) == Some(Protocol::TwoPc) && spec.coord != me {
                let coord = spec.coord;
                cx.push_send(coord, TwoPcMsg::DecisionReq { tx });
            }
        }
        let committed: Vec<TxSpec> = self
            .coords
            .values()
            .filter(|(_, st)| matches!(st, CoordState::Committed(_)))
            .map(|(s, _)| s.clone())
            .collect();
        for spec in &committed {
            // Whoever started the transaction may not have heard the decision.
            cx.out.decided(spec.tx, TxOutcome::Committed);
            let decide = TwoPcMsg::Decide { tx: spec.tx, commit: true };
            cx.tell_decision(spec, &BTreeSet::new(), true, part.applied(spec.tx), decide);
        }
        // The coordinator's own part, once applied, acks itself (acks are not logged).
        for spec in committed.iter().filter(|s| part.applied(s.tx)) {
            self.on_ack(cx, me, spec.tx);
        }
    }
}

impl Facts for TwoPc {
    fn knows(&self, tx: TxnId) -> bool {
        self.coords.contains_key(&tx)
    }

    fn decision(&self, tx: TxnId) -> Option<TxOutcome> {
        match self.coord(tx)? {
            CoordState::Voting(_) => None,
            CoordState::Committed(_) | CoordState::Ended => Some(TxOutcome::Committed),
            CoordState::Aborted(r) => Some(TxOutcome::Aborted(*r)),
        }
    }

    fn state(&self, _part: &Participant, tx: TxnId) -> Option<TxState> {
        Some(match self.coord(tx)? {
            CoordState::Voting(_) => TxState::Voting,
            CoordState::Committed(_) | CoordState::Ended => TxState::Committed,
            CoordState::Aborted(_) => TxState::Aborted,
        })
    }

    fn waiting(&self) -> Vec<TxnId> {
        self.coords
            .iter()
            .filter(|(_, (_, st))| matches!(st, CoordState::Voting(_) | CoordState::Committed(_)))
            .map(|(tx, _)| *tx)
            .collect()
    }

    fn finished(&self, tx: TxnId) -> bool {
        matches!(self.coord(tx), Some(CoordState::Aborted(_) | CoordState::Ended))
    }

    fn members(&self, tx: TxnId) -> Vec<NodeId> {
        self.coords.get(&tx).map_or(Vec::new(), |(s, _)| s.members())
    }

    fn decided(&self) -> Vec<TxnId> {
        self.coords.keys().copied().collect()
    }
}

#[cfg(test)]
#[path = "two_pc_tests.rs"]
mod tests;
