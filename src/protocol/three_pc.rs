//! Three-phase commit, at one node, as a pure machine: Skeen's protocol ("Nonblocking
//! Commit Protocols", SIGMOD 1981) with the termination protocol of Bernstein,
//! Hadzilacos and Goodman ("Concurrency Control and Recovery in Database Systems", 1987,
//! ch. 7), for a transaction of any number of parts.
//!
//! 1. The coordinator sends `Prepare`; each participant votes as escrow says, a YES
//!    forced (`Prepared`) first, as in two-phase commit.
//! 2. With every YES, the coordinator forces `PreCommitting` and sends `PreCommit` to each
//!    participant in part order; a participant forces `PreCommitted` and acks. No state
//!    is next to both commit and abort, which is what lets the others finish without the
//!    coordinator.
//! 3. With every ack, the coordinator forces its commit and sends `DoCommit` (the money
//!    itself to a participant it pays); the parts finish as in two-phase commit.
//!
//! A coordinator that does not hear an ack in time counts that participant as failed
//! and commits anyway. This is the textbook rule, safe only with a perfect failure
//! detector: under a partition or a pause the participant cut off runs the termination
//! protocol alone and aborts, and the transaction splits (`Check` says so).
//!
//! **Termination** (`three_pc/termination.rs`). A participant that times out while
//! uncertain (`Prepared`) or pre-committed never decides alone: the participants it can
//! reach elect the lowest id, which asks every reachable one its state (`StateReq`,
//! `State`) and decides (TR1–TR4): any aborted ⇒ abort; any committed ⇒ commit; all
//! uncertain ⇒ abort; some pre-committed ⇒ pre-commit the rest, then commit. A node that
//! restarts in doubt asks the others (`DecisionReq`) and does not take part in a
//! termination until it has learnt the outcome, unless every node of the transaction can
//! be reached.

use super::commit::{CommitProtocol, Facts};
use super::effect::{Ctx, Force};
use super::participant::{Credited, LegState, Participant};
use super::record::{Record, ThreeRecord};
use crate::ids::{Amount, NodeId, TxnId};
use crate::wire::{AbortReason, CrashPoint, Protocol, ThreeMsg, TxOutcome, TxSpec, TxState};
use std::collections::{BTreeMap, BTreeSet};

mod recovery;
mod termination;

type Cx<'a> = Ctx<'a, ThreeMsg>;

/// A coordinator's view of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// The transactions this node runs by three-phase commit, in any role (its parts' legs
/// are the [`Participant`]'s).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ThreePc {
    coords: BTreeMap<TxnId, (TxSpec, Coord)>,
    /// Parts pre-committed here.
    pre: BTreeSet<TxnId>,
    /// Terminations led here.
    terms: BTreeMap<TxnId, Term>,
    /// Outcomes this node knows (decided, or told).
    decided: BTreeMap<TxnId, (TxSpec, bool)>,
    /// Restarted in doubt: asks, and answers a `StateReq` only from a leader that reaches
    /// every node of the transaction, until it learns the outcome.
    recovering: BTreeSet<TxnId>,
    /// Answered a `StateReq` knowing nothing of the transaction: it never votes YES now.
    refused: BTreeSet<TxnId>,
}

impl ThreePc {
    /// The transaction, as coordinator, leader or from a known outcome.
    fn spec(&self, tx: TxnId) -> Option<&TxSpec> {
        self.coords
            .get(&tx)
            .map(|c| &c.0)
            .or_else(|| self.terms.get(&tx).map(|t| &t.spec))
            .or_else(|| self.decided.get(&tx).map(|d| &d.0))
    }

    /// Whether this node's part in `tx` is pre-committed (and not yet known committed).
    fn pre_committed(&self, tx: TxnId) -> bool {
        self.pre.contains(&tx) && !self.decided.contains_key(&tx)
    }

    /// What this node says its state is, in a termination.
    fn leg_state(&self, part: &Participant, tx: TxnId) -> TxState {
        if let Some(&(_, commit)) = self.decided.get(&tx) {
            return if commit { TxState::Committed } else { TxState::Aborted };
        }
        match part.state(tx) {
            Some(LegState::Committed | LegState::Prepared { commit_known: true }) => {
                TxState::Committed
            }
            Some(LegState::Aborted) => TxState::Aborted,
            Some(LegState::Prepared { .. }) if self.pre.contains(&tx) => TxState::PreCommitted,
            Some(LegState::Prepared { .. }) => TxState::Prepared,
            None => match self.coords.get(&tx).map(|c| &c.1) {
                Some(Coord::PreCommitting(_)) => TxState::PreCommitted,
                Some(Coord::Voting(_)) => TxState::Prepared,
                Some(Coord::Committed(_) | Coord::Ended) => TxState::Committed,
                Some(Coord::Aborted) => TxState::Aborted,
                None => TxState::None,
            },
        }
    }

    /// Asked about a transaction it knows nothing of, this node aborts it: it never voted
    /// YES on it, and never will (see `on_decision_req`). That is a promise, forced before
    /// the answer: a node that forgot it in a crash could vote YES on a transaction the
    /// asker has aborted on its word (the simulation found it, with four parts).
    fn refuse(&mut self, cx: &mut Cx, tx: TxnId) {
        if self.refused.insert(tx) {
            cx.out.log(ThreeRecord::Refused { tx }, Force::Now);
            cx.out.decided(tx, TxOutcome::Aborted(AbortReason::NodeDown));
        }
    }

    /// Participant, step 1.
    fn on_prepare(&mut self, part: &mut Participant, cx: &mut Cx, spec: TxSpec) {
        let tx = spec.tx;
        if let Some(st) = part.state(tx) {
            let no = (st == LegState::Aborted).then_some(AbortReason::Timeout);
            cx.send(spec.coord, ThreeMsg::Vote { tx, no });
            return;
        }
        if self.refused.contains(&tx) || self.decided.contains_key(&tx) {
            cx.send(spec.coord, ThreeMsg::Vote { tx, no: Some(AbortReason::Timeout) });
            return;
        }
        cx.out.point(CrashPoint::BeforeVote);
        let no = part.vote(&spec);
        if no.is_none() {
            cx.out.log(ThreeRecord::Prepared { spec: spec.clone() }, Force::Now);
            part.prepare(&spec, Protocol::ThreePc);
        }
        cx.send(spec.coord, ThreeMsg::Vote { tx, no });
        if no.is_none() {
            cx.out.point(CrashPoint::AfterVote);
        }
    }

    /// Coordinator, step 2: a vote. With every YES in, pre-commit (forced), then
    /// `PreCommit` to each participant in part order.
    fn on_vote(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        from: NodeId,
        tx: TxnId,
        no: Option<AbortReason>,
    ) {
        let Some((spec, Coord::Voting(yes))) = self.coords.get_mut(&tx) else { return };
        if let Some(reason) = no {
            let spec = spec.clone();
            self.coordinator_abort(part, cx, spec, reason, Some(from));
            return;
        }
        yes.insert(from);
        self.count_votes(part, cx, tx);
    }

    fn count_votes(&mut self, part: &mut Participant, cx: &mut Cx, tx: TxnId) {
        let Some((spec, Coord::Voting(yes))) = self.coords.get(&tx) else { return };
        if !spec.participants().all(|p| yes.contains(&p)) {
            return;
        }
        let (spec, me) = (spec.clone(), cx.me());
        cx.out.point(CrashPoint::BeforePreCommit);
        cx.out.log(ThreeRecord::PreCommitting { spec: spec.clone() }, Force::Now);
        let mut acked = BTreeSet::new();
        if spec.is_participant(me) {
            self.pre.insert(tx);
            acked.insert(me);
        }
        self.coords.insert(tx, (spec.clone(), Coord::PreCommitting(acked)));
        let remote: Vec<NodeId> = spec.participants().filter(|&p| p != me).collect();
        for (i, &p) in remote.iter().enumerate() {
            if i > 0 {
                cx.out.point(CrashPoint::MidPreCommit);
            }
            cx.push_send(p, ThreeMsg::PreCommit { tx });
        }
        cx.out.point(CrashPoint::AfterPreCommit);
        if remote.is_empty() {
            self.coordinator_commit(part, cx, spec);
        }
    }

    /// Participant (asked by the coordinator or a termination's leader): pre-commit.
    fn on_pre_commit(&mut self, part: &mut Participant, cx: &mut Cx, from: NodeId, tx: TxnId) {
        match part.state(tx) {
            Some(LegState::Prepared { .. }) if !self.pre.contains(&tx) => {
                let spec = part.spec(tx).expect("a leg has its spec").clone();
                cx.out.log(ThreeRecord::PreCommitted { spec }, Force::Now);
                self.pre.insert(tx);
                cx.send(from, ThreeMsg::PreCommitAck { tx });
                cx.out.point(CrashPoint::AfterPreCommit);
            }
            Some(LegState::Prepared { .. }) => cx.send(from, ThreeMsg::PreCommitAck { tx }),
            // A participant that has finished ignores the protocol's messages.
            _ => {}
        }
    }

    fn on_pre_commit_ack(&mut self, part: &mut Participant, cx: &mut Cx, from: NodeId, tx: TxnId) {
        if let Some((spec, Coord::PreCommitting(acked))) = self.coords.get_mut(&tx) {
            acked.insert(from);
            if spec.participants().all(|p| acked.contains(&p)) {
                let spec = spec.clone();
                self.coordinator_commit(part, cx, spec);
            }
            return;
        }
        if let Some(t) = self.terms.get_mut(&tx).filter(|t| t.pre_committing) {
            t.waiting.remove(&from);
            if t.waiting.is_empty() {
                let spec = t.spec.clone();
                self.terminate(part, cx, spec, true, AbortReason::NodeDown);
            }
        }
    }

    /// Coordinator, step 3: commit forced, then `DoCommit` (or the money), then its own
    /// part, which the commit record covers.
    fn coordinator_commit(&mut self, part: &mut Participant, cx: &mut Cx, spec: TxSpec) {
        let (tx, me) = (spec.tx, cx.me());
        cx.out.point(CrashPoint::BeforeDecision);
        cx.out.log(ThreeRecord::Decision { spec: spec.clone(), commit: true }, Force::Now);
        self.coords.insert(tx, (spec.clone(), Coord::Committed(BTreeSet::new())));
        self.decided.insert(tx, (spec.clone(), true));
        // A coordinator that recovered pre-committing and then heard every ack (late
        // ones, sent before its crash) asks no more.
        self.recovering.remove(&tx);
        cx.out.point(CrashPoint::AfterDecision);
        cx.out.decided(tx, TxOutcome::Committed);
        let remote: Vec<NodeId> =
            spec.participants().filter(|&p| p != me && !spec.pays_to(me, p)).collect();
        for (i, &p) in remote.iter().enumerate() {
            if i > 0 {
                cx.out.point(CrashPoint::MidCommit);
            }
            cx.push_send(p, ThreeMsg::DoCommit { tx });
        }
        if spec.is_participant(me) && part.commit_with_decision(&mut cx.out, tx) {
            cx.send(me, ThreeMsg::Ack { tx });
        }
    }

    /// Coordinator: abort, telling every participant but the one whose NO decided it.
    fn coordinator_abort(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        spec: TxSpec,
        reason: AbortReason,
        voted_no: Option<NodeId>,
    ) {
        let (tx, me) = (spec.tx, cx.me());
        cx.out.log(ThreeRecord::Decision { spec: spec.clone(), commit: false }, Force::Lazy);
        self.coords.insert(tx, (spec.clone(), Coord::Aborted));
        self.decided.insert(tx, (spec.clone(), false));
        self.recovering.remove(&tx);
        cx.out.decided(tx, TxOutcome::Aborted(reason));
        if matches!(part.state(tx), Some(LegState::Prepared { .. })) {
            part.release(tx);
            self.pre.remove(&tx);
        }
        for p in spec.participants().filter(|&p| Some(p) != voted_no && p != me) {
            cx.push_send(p, ThreeMsg::Decide { tx, commit: false });
        }
    }

    /// A participant learns the outcome (`DoCommit`, a `Decide`, an inquiry's answer).
    fn on_decide(&mut self, part: &mut Participant, cx: &mut Cx, tx: TxnId, commit: bool) {
        self.recovering.remove(&tx);
        let Some(spec) = part.spec(tx).cloned() else {
            self.learn_elsewhere(part, cx, tx, commit);
            return;
        };
        self.note_outcome(cx, tx, commit);
        match (part.state(tx), commit) {
            (Some(LegState::Prepared { .. }), true) => {
                self.learn(part, &spec, true);
                if part.commit_learnt(&mut cx.out, tx) {
                    cx.send(spec.coord, ThreeMsg::Ack { tx });
                }
            }
            (Some(LegState::Prepared { .. }), false) => {
                self.learn(part, &spec, false);
                part.abort(&mut cx.out, tx);
                if self.pre.remove(&tx) {
                    // PreCommitted is logged: the abort must outlive a crash, or recovery
                    // would report this part committable to a termination.
                    cx.out.log(ThreeRecord::Decision { spec, commit: false }, Force::Now);
                }
            }
            (Some(LegState::Committed), true) => {
                if !self.decided.contains_key(&tx) {
                    self.learn(part, &spec, true); // the money came first
                }
                cx.send(spec.coord, ThreeMsg::Ack { tx })
            }
            // Committed here and told abort, or the reverse: the split three-phase commit
            // reaches under a partition or a pause. What is logged stays.
            _ => {}
        }
    }

    /// A node with no part in `tx` (its coordinator, or a leader) learns the outcome.
    fn learn_elsewhere(&mut self, part: &mut Participant, cx: &mut Cx, tx: TxnId, commit: bool) {
        let Some(spec) = self.spec(tx).cloned() else { return };
        if self.decided.contains_key(&tx) {
            return;
        }
        self.note_outcome(cx, tx, commit);
        self.learn(part, &spec, commit);
    }

    /// A coordinator whose `PreCommitting` is logged learns the outcome from another
    /// node: it logs it (forced), or it would wake up from a crash to its pre-commit
    /// again and ask for ever for an outcome the others may have forgotten to resend.
    fn note_outcome(&mut self, cx: &mut Cx, tx: TxnId, commit: bool) {
        if let Some((spec, Coord::PreCommitting(_))) = self.coords.get(&tx) {
            cx.out.log(ThreeRecord::Decision { spec: spec.clone(), commit }, Force::Now);
        }
    }

    /// This node learnt the outcome from another (a leader, or an inquiry's answer). A
    /// coordinator that had not decided follows it: committed, it collects the acks and
    /// sends the commit again when they are late; aborted, it is done.
    fn learn(&mut self, part: &Participant, spec: &TxSpec, commit: bool) {
        self.decided.insert(spec.tx, (spec.clone(), commit));
        // Knowing the outcome (from a Decide, or from the money itself), a recovered
        // node asks no more.
        self.recovering.remove(&spec.tx);
        if let Some((_, st)) = self.coords.get_mut(&spec.tx) {
            if matches!(st, Coord::Voting(_) | Coord::PreCommitting(_)) {
                // Its own part, if applied already, has acked.
                let acks = BTreeSet::from_iter(part.applied(spec.tx).then_some(part.id()));
                *st = if commit { Coord::Committed(acks) } else { Coord::Aborted };
            }
        }
    }

    /// Coordinator: a participant has applied the commit. A coordinator still
    /// pre-committing (recovered, its commit decided by a termination) learns the commit
    /// from it: only a commit is acked.
    fn on_ack(&mut self, part: &mut Participant, cx: &mut Cx, from: NodeId, tx: TxnId) {
        if let Some((spec, Coord::PreCommitting(_))) = self.coords.get(&tx) {
            let spec = spec.clone();
            cx.out.log(ThreeRecord::Decision { spec: spec.clone(), commit: true }, Force::Now);
            self.learn(part, &spec, true);
            // Its own part, still prepared, commits as any participant's that learns.
            if part.commit_learnt(&mut cx.out, tx) {
                cx.send(cx.me(), ThreeMsg::Ack { tx });
            }
        }
        let Some((spec, Coord::Committed(acks))) = self.coords.get_mut(&tx) else { return };
        acks.insert(from);
        if spec.participants().all(|p| acks.contains(&p)) {
            cx.out.log(ThreeRecord::End { tx }, Force::Lazy);
            self.coords.get_mut(&tx).expect("matched above").1 = Coord::Ended;
        }
    }

    /// Someone asks for the outcome: whoever knows it says; a coordinator still voting
    /// aborts first; a node in doubt does not answer. A node that knows nothing of the
    /// transaction answers abort and will vote NO if its `Prepare` comes later: it never
    /// voted YES (so the transaction cannot commit), or it coordinated and lost its votes
    /// in a crash before `PreCommitting` (so no one is pre-committed, and no termination
    /// can commit).
    fn on_decision_req(&mut self, part: &mut Participant, cx: &mut Cx, from: NodeId, tx: TxnId) {
        if let Some((spec, Coord::Voting(_))) = self.coords.get(&tx).cloned() {
            self.coordinator_abort(part, cx, spec, AbortReason::Timeout, None);
        }
        let known = match self.leg_state(part, tx) {
            TxState::Committed => Some(true),
            TxState::Aborted => Some(false),
            TxState::None => {
                self.refuse(cx, tx);
                Some(false)
            }
            _ => None,
        };
        if let Some(commit) = known {
            cx.send(from, ThreeMsg::Decide { tx, commit });
        }
    }

    /// Termination: a leader asks this node's state.
    fn on_state_req(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        from: NodeId,
        tx: TxnId,
        all: bool,
    ) {
        if self.recovering.contains(&tx) && !all {
            return; // in recovery: it takes part only when every node does
        }
        if let Some((spec, Coord::Voting(_))) = self.coords.get(&tx).cloned() {
            // A coordinator still voting aborts before it answers.
            self.coordinator_abort(part, cx, spec, AbortReason::Timeout, None);
        }
        let state = self.leg_state(part, tx);
        if state == TxState::None {
            self.refuse(cx, tx);
        }
        cx.send(from, ThreeMsg::State { tx, state });
    }

    /// Termination: a node's answer to this leader.
    fn on_state(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        from: NodeId,
        tx: TxnId,
        state: TxState,
    ) {
        let Some(t) = self.terms.get_mut(&tx) else { return };
        if t.pre_committing {
            return;
        }
        t.states.insert(from, state);
        t.waiting.remove(&from);
        if t.waiting.is_empty() {
            self.decide_termination(part, cx, tx);
        }
    }
}

impl CommitProtocol for ThreePc {
    type Msg = ThreeMsg;
    const PROTOCOL: Protocol = Protocol::ThreePc;

    /// This node coordinates `spec`. Its own part votes at once (held without a record:
    /// `PreCommitting` covers it); a NO aborts before anything leaves.
    fn start(&mut self, part: &mut Participant, cx: &mut Cx, spec: &TxSpec, _nodes: &[NodeId]) {
        let (tx, me) = (spec.tx, cx.me());
        let mut yes = BTreeSet::new();
        if spec.is_participant(me) {
            if let Some(reason) = part.vote(spec) {
                let rec = ThreeRecord::Decision { spec: spec.clone(), commit: false };
                cx.out.log(rec, Force::Lazy);
                self.coords.insert(tx, (spec.clone(), Coord::Aborted));
                cx.out.decided(tx, TxOutcome::Aborted(reason));
                return;
            }
            part.prepare(spec, Protocol::ThreePc);
            yes.insert(me);
        }
        self.coords.insert(tx, (spec.clone(), Coord::Voting(yes)));
        for p in spec.participants().filter(|&p| p != me) {
            cx.push_send(p, ThreeMsg::Prepare { spec: spec.clone() });
        }
        self.count_votes(part, cx, tx);
    }

    fn on_message(&mut self, part: &mut Participant, cx: &mut Cx, from: NodeId, m: ThreeMsg) {
        match m {
            ThreeMsg::Prepare { spec } => self.on_prepare(part, cx, spec),
            ThreeMsg::Vote { tx, no } => self.on_vote(part, cx, from, tx, no),
            ThreeMsg::PreCommit { tx } => self.on_pre_commit(part, cx, from, tx),
            ThreeMsg::PreCommitAck { tx } => self.on_pre_commit_ack(part, cx, from, tx),
            ThreeMsg::DoCommit { tx } => self.on_decide(part, cx, tx, true),
            ThreeMsg::Decide { tx, commit } => self.on_decide(part, cx, tx, commit),
            ThreeMsg::Ack { tx } => self.on_ack(part, cx, from, tx),
            ThreeMsg::DecisionReq { tx } => self.on_decision_req(part, cx, from, tx),
            ThreeMsg::StateReq { tx, all } => self.on_state_req(part, cx, from, tx, all),
            ThreeMsg::State { tx, state } => self.on_state(part, cx, from, tx, state),
        }
    }

    /// A payee's money: applied once, and it is the commit (only a commit pays).
    fn on_credit(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        from: NodeId,
        tx: TxnId,
        amount: Amount,
    ) {
        let ack = match part.on_credit(&mut cx.out, from, tx, amount) {
            Credited::Applied { complete } => complete,
            Credited::Again => part.applied(tx),
            Credited::Ignored => return,
        };
        let spec = part.spec(tx).expect("a credited leg").clone();
        if !self.decided.contains_key(&tx) {
            self.note_outcome(cx, tx, true);
            self.learn(part, &spec, true);
        }
        if ack {
            cx.send(spec.coord, ThreeMsg::Ack { tx });
        }
    }

    fn on_timeout(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        tx: TxnId,
        reason: AbortReason,
        reach: &[NodeId],
    ) {
        self.time_out(part, cx, tx, reason, reach)
    }

    fn replay(&mut self, part: &mut Participant, rec: &Record) {
        if let Record::ThreePc(r) = rec {
            self.replay_three(part, r);
        }
    }

    /// After a restart: finish what was decided; ask about what was not (never decide
    /// alone); a pre-committing coordinator without a decision asks too.
    fn recovered(&mut self, part: &mut Participant, cx: &mut Cx) {
        self.recover(part, cx)
    }
}

impl Facts for ThreePc {
    fn knows(&self, tx: TxnId) -> bool {
        self.coords.contains_key(&tx)
            || self.decided.contains_key(&tx)
            || self.terms.contains_key(&tx)
            || self.refused.contains(&tx)
    }

    fn decision(&self, tx: TxnId) -> Option<TxOutcome> {
        let node_down = TxOutcome::Aborted(AbortReason::NodeDown);
        match self.coords.get(&tx).map(|c| &c.1) {
            Some(Coord::Committed(_) | Coord::Ended) => return Some(TxOutcome::Committed),
            Some(Coord::Aborted) => return Some(node_down),
            _ => {}
        }
        self.decided.get(&tx).map(|&(_, c)| if c { TxOutcome::Committed } else { node_down })
    }

    /// A pre-committed part (undecided); else a coordinator's state, or a known outcome.
    fn state(&self, _part: &Participant, tx: TxnId) -> Option<TxState> {
        if self.pre_committed(tx) {
            return Some(TxState::PreCommitted);
        }
        match self.coords.get(&tx).map(|c| &c.1) {
            Some(Coord::Voting(_)) => return Some(TxState::Voting),
            Some(Coord::PreCommitting(_)) => return Some(TxState::PreCommitted),
            Some(Coord::Committed(_) | Coord::Ended) => return Some(TxState::Committed),
            Some(Coord::Aborted) => return Some(TxState::Aborted),
            None => {}
        }
        self.decided.get(&tx).map(|d| if d.1 { TxState::Committed } else { TxState::Aborted })
    }

    fn waiting(&self) -> Vec<TxnId> {
        let coords = self.coords.iter().filter(|(_, (_, st))| {
            matches!(st, Coord::Voting(_) | Coord::PreCommitting(_) | Coord::Committed(_))
        });
        coords
            .map(|(tx, _)| *tx)
            .chain(self.terms.keys().copied())
            .chain(self.recovering.iter().copied())
            .collect()
    }

    fn finished(&self, tx: TxnId) -> bool {
        matches!(self.coords.get(&tx), Some((_, Coord::Aborted | Coord::Ended)))
    }

    fn members(&self, tx: TxnId) -> Vec<NodeId> {
        self.spec(tx).map_or(Vec::new(), TxSpec::members)
    }

    fn decided(&self) -> Vec<TxnId> {
        self.coords.keys().chain(self.decided.keys()).copied().collect()
    }
}
