//! Paxos Commit, at one node, as a pure machine (Gray and Lamport, "Consensus on
//! Transaction Commit", ACM TODS 31(1), 2006), with F = 1, for a transaction of any
//! number of parts.
//!
//! Each participant's vote (prepared, or aborted) is decided by its own Paxos instance on
//! three acceptors ([`acceptors`]: the participants in part order, then the coordinator,
//! then the lowest-id node outside the transaction, the first three of these). Ballot
//! `(0, r)` belongs to participant `r`, which skips phase 1 and proposes its own vote. A
//! value is chosen once two acceptors have accepted it at the same ballot; the
//! transaction commits iff every instance chose *prepared*, and aborts iff one chose
//! *aborted*. The money then moves as in the other protocols (`participant`): one
//! `Credit` per payment.
//!
//! Messages are bundled where one node plays several parts, so a fault-free transfer
//! coordinated by its debit side costs 3 (+1) messages and 4 forced writes: the
//! coordinator's vote with its own accept, the credit side's vote with its accepts of
//! both votes, the coordinator's accept of that vote (with its debit), the credit. A vote
//! that reaches fewer than two acceptors that way (a participant that is no acceptor,
//! past the third part) is passed on by the coordinator to as many more as it needs.
//!
//! Safety needs only durable promises and accepts (forced before they are answered) and
//! unique ballots (a leader forces each ballot before using it). Timeouts decide
//! liveness alone: a participant or acceptor that times out leads a higher ballot, asks
//! the acceptors what they accepted (phase 1), proposes for each instance the value of
//! the highest ballot found, or *aborted* if none (phase 2), and learns the outcome. So it
//! is safe under every crash, pause and partition, and decides whenever the participants
//! and two acceptors can reach each other.

use super::commit::{CommitProtocol, Facts};
use super::effect::{Ctx, Force};
use super::participant::{Credited, LegState, Participant};
use super::record::{PaxosRecord, Record};
use crate::ids::{Amount, NodeId, TxnId};
use crate::wire::{
    AbortReason, Accept, Ballot, CrashPoint, PaxosMsg, Protocol, TxOutcome, TxSpec, TxState,
};
use std::collections::{BTreeMap, BTreeSet};

mod acceptor;
mod recovery;

type Cx<'a> = Ctx<'a, PaxosMsg>;

/// The three acceptors of `spec` among `nodes` (every node of the system): the
/// participants in part order, then the coordinator, then the lowest-id nodes outside the
/// transaction; the first three. For a transfer: both participants and the coordinator
/// when a third node coordinates, else both participants and the lowest-id node outside
/// (SPEC chapter 8); for a transaction on one node, it and the two lowest outside. With
/// fewer than three nodes the coordinator fills the rest (the master refuses Paxos Commit
/// there).
pub fn acceptors(spec: &TxSpec, nodes: &[NodeId]) -> [NodeId; 3] {
    let mut v: Vec<NodeId> = spec.participants().collect();
    if !v.contains(&spec.coord) {
        v.push(spec.coord);
    }
    while v.len() < 3 {
        match nodes.iter().filter(|n| !v.contains(n)).min() {
            Some(&w) => v.push(w),
            None => break,
        }
    }
    v.resize(3.max(v.len()), spec.coord);
    [v[0], v[1], v[2]]
}

/// A ballot this node leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Lead {
    bal: Ballot,
    /// Phase 1's answers: per acceptor, what it had accepted in each instance.
    promises: BTreeMap<NodeId, Vec<Option<Accept>>>,
    /// Phase 2 has begun.
    proposed: bool,
}

/// One transaction as this node sees it, in all its roles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Px {
    spec: TxSpec,
    acceptors: [NodeId; 3],
    /// This node coordinates it (the first leader).
    coordinating: bool,
    /// As an acceptor, per instance: the ballot promised (nothing lower is accepted), and
    /// what was accepted. Ballot 0 differs per instance (each participant owns its own),
    /// so promises are kept per instance, as in the TLA+ specification.
    promised: Vec<Option<Ballot>>,
    accepted: Vec<Option<Accept>>,
    /// The highest ballot this node has led.
    ballot: Option<Ballot>,
    /// The highest ballot this node has heard of (a promise, or a refusal's).
    seen: Option<Ballot>,
    lead: Option<Lead>,
    /// As a learner: who accepted what, per (instance, ballot, value).
    heard: BTreeMap<(usize, Ballot, bool), BTreeSet<NodeId>>,
    /// Why a participant voted NO, if one did.
    no: Option<AbortReason>,
    decided: Option<bool>,
    acks: BTreeSet<NodeId>,
    ended: bool,
}

impl Px {
    fn new(spec: TxSpec, acceptors: [NodeId; 3]) -> Px {
        let n = spec.parts.len();
        Px {
            spec,
            acceptors,
            coordinating: false,
            promised: vec![None; n],
            accepted: vec![None; n],
            ballot: None,
            seen: None,
            lead: None,
            heard: BTreeMap::new(),
            no: None,
            decided: None,
            acks: BTreeSet::new(),
            ended: false,
        }
    }

    /// The instance of participant `rm`: its place among the parts.
    fn inst(&self, rm: NodeId) -> Option<usize> {
        self.spec.index_of(rm)
    }

    /// The value chosen in instance `i`, if any: two acceptors at one ballot.
    fn chosen(&self, i: usize) -> Option<bool> {
        self.heard
            .iter()
            .find(|((j, _, _), who)| *j == i && who.len() >= 2)
            .map(|((_, _, v), _)| *v)
    }

    /// What this node accepted in the instances of `a` and `b`, in instance order: what
    /// a participant answering leader `a` reports (`b` itself).
    fn accepted_of(&self, a: NodeId, b: NodeId) -> [Option<Accept>; 2] {
        let mut idx: Vec<usize> = [self.inst(a), self.inst(b)].into_iter().flatten().collect();
        idx.sort();
        idx.dedup();
        let mut v = [None; 2];
        for (k, i) in idx.into_iter().enumerate() {
            v[k] = self.accepted[i];
        }
        v
    }
}

/// The transactions this node runs by Paxos Commit, in any role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PaxosCommit {
    txs: BTreeMap<TxnId, Px>,
}

impl PaxosCommit {
    /// The acceptors of `tx`, if this node knows them.
    pub fn acceptors_of(&self, tx: TxnId) -> Option<[NodeId; 3]> {
        self.txs.get(&tx).map(|p| p.acceptors)
    }

    fn px(&mut self, spec: &TxSpec, acceptors: [NodeId; 3]) -> &mut Px {
        self.txs.entry(spec.tx).or_insert_with(|| Px::new(spec.clone(), acceptors))
    }

    /// Participant: asked to vote (with the leader's own vote to accept, when it has one).
    fn on_prepare(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        from: NodeId,
        spec: TxSpec,
        acceptors: [NodeId; 3],
        own: Option<Accept>,
    ) {
        let (tx, me) = (spec.tx, cx.me());
        let px = self.px(&spec, acceptors);
        let took_own = own.is_some_and(|a| acceptor::accept(px, cx, a));
        let mine = px.inst(me).and_then(|i| px.accepted[i]);
        if let Some(v) = mine.filter(|a| a.bal.n == 0 && a.inst == me) {
            // Asked again: the same answer.
            let accepted = px.accepted_of(from, me);
            cx.send(from, PaxosMsg::Phase2b { tx, accepted, vote: Some(v), no: None });
            return;
        }
        if px.decided.is_some() || part.state(tx).is_some() {
            return;
        }
        cx.out.point(CrashPoint::BeforeVote);
        let no = part.vote(&spec);
        if no.is_none() {
            cx.out.log(PaxosRecord::Prepared { spec: spec.clone(), acceptors }, Force::Now);
            part.prepare(&spec, Protocol::Paxos);
        }
        let v = Accept { inst: me, bal: Ballot { n: 0, node: me }, prepared: no.is_none() };
        let px = self.txs.get_mut(&tx).expect("made above");
        let accepted_own = acceptor::accept(px, cx, v);
        let accepted = px.accepted_of(from, me);
        cx.send(from, PaxosMsg::Phase2b { tx, accepted, vote: Some(v), no });
        if no.is_none() {
            cx.out.point(CrashPoint::AfterVote);
        }
        if accepted_own || took_own {
            cx.out.point(CrashPoint::AfterAccept);
        }
    }

    /// A learner (or acceptor) hears what another accepted, with its vote to accept.
    fn on_phase2b(&mut self, part: &mut Participant, cx: &mut Cx, from: NodeId, msg: PaxosMsg) {
        let PaxosMsg::Phase2b { tx, accepted, vote, no } = msg else { return };
        let Some(px) = self.txs.get_mut(&tx) else {
            // A NO vote decides the transaction wherever it lands: no ballot can choose
            // prepared for that participant's instance. A coordinator restarted with
            // nothing logged is the one to say so (fault script 7367).
            if let (Some(r), Some(v)) = (no, vote) {
                if !v.prepared && v.inst == from {
                    cx.out.decided(tx, TxOutcome::Aborted(r));
                }
            }
            return;
        };
        for a in accepted.into_iter().flatten() {
            if let Some(i) = px.inst(a.inst) {
                px.heard.entry((i, a.bal, a.prepared)).or_default().insert(from);
            }
        }
        if no.is_some() {
            px.no = no;
        }
        if let Some(v) = vote {
            if let Some(commit) = px.decided.filter(|_| from != cx.me()) {
                // A participant that voted after the outcome (it was down when the
                // others decided): it learns it now, or it would stay in doubt.
                cx.send(from, PaxosMsg::Decide { tx, commit });
                return;
            }
            if acceptor::accept(px, cx, v) {
                cx.out.point(CrashPoint::AfterAccept);
            }
            acceptor::pass_on(px, cx, v);
        }
        self.learn(part, cx, tx);
    }

    /// A leader's phase 1 answer; with two, it proposes for each instance the value of the
    /// highest ballot accepted, or aborted.
    fn on_promise(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        tx: TxnId,
        bal: Ballot,
        last: Vec<Option<Accept>>,
    ) {
        let Some(px) = self.txs.get_mut(&tx) else { return };
        // A refusal names a higher ballot: the next one this node leads passes it.
        px.seen = px.seen.max(Some(bal));
        let Some(lead) = px.lead.as_mut().filter(|l| l.bal == bal && !l.proposed) else { return };
        lead.promises.insert(from, last);
        if lead.promises.len() < 2 {
            return;
        }
        lead.proposed = true;
        for (i, rm) in px.spec.participants().enumerate() {
            let found = lead
                .promises
                .values()
                .filter_map(|l| l.get(i).copied().flatten())
                .max_by_key(|a| a.bal);
            let prepared = found.is_some_and(|a| a.prepared);
            let a = Accept { inst: rm, bal, prepared };
            for &acc in &px.acceptors {
                cx.send(acc, PaxosMsg::Phase2a { tx, accept: a });
            }
        }
    }

    /// A learner holds what it heard: every instance chosen, the transaction is decided.
    fn learn(&mut self, part: &mut Participant, cx: &mut Cx, tx: TxnId) {
        let Some(px) = self.txs.get_mut(&tx) else { return };
        if px.decided.is_some() {
            return;
        }
        let chosen: Vec<Option<bool>> = (0..px.spec.parts.len()).map(|i| px.chosen(i)).collect();
        let commit = if chosen.contains(&Some(false)) {
            false
        } else if chosen.iter().all(|c| *c == Some(true)) {
            true
        } else {
            return;
        };
        self.decide(part, cx, tx, commit);
    }

    /// This node knows the outcome: reported, applied to its part, told to the
    /// participants (the money, when it pays and commits, tells those it pays).
    ///
    /// The coordinator (the first leader) reaches chapter 5's decision points here:
    /// `before-decision` before it logs what it learnt, `after-decision` once logged with
    /// nothing sent, `mid-commit` with the outcome sent to one participant only.
    fn decide(&mut self, part: &mut Participant, cx: &mut Cx, tx: TxnId, commit: bool) {
        let px = self.txs.get_mut(&tx).expect("known");
        let coordinating = px.coordinating;
        if coordinating {
            cx.out.point(CrashPoint::BeforeDecision);
        }
        px.decided = Some(commit);
        let (spec, acceptors) = (px.spec.clone(), px.acceptors);
        let reason = px.no.unwrap_or(AbortReason::NodeDown);
        cx.out.log(PaxosRecord::Decision { spec: spec.clone(), acceptors, commit }, Force::Lazy);
        if coordinating {
            cx.out.point(CrashPoint::AfterDecision);
        }
        cx.out.decided(tx, if commit { TxOutcome::Committed } else { TxOutcome::Aborted(reason) });
        self.apply(part, cx, &spec, commit);
        let me = cx.me();
        let mut told = 0;
        for rm in spec.participants().filter(|&r| r != me) {
            if commit && spec.pays_to(me, rm) {
                continue;
            }
            if told > 0 && coordinating {
                cx.out.point(CrashPoint::MidCommit);
            }
            cx.push_send(rm, PaxosMsg::Decide { tx, commit });
            told += 1;
        }
    }

    /// The outcome applied to this node's part.
    fn apply(&mut self, part: &mut Participant, cx: &mut Cx, spec: &TxSpec, commit: bool) {
        let tx = spec.tx;
        match (part.state(tx), commit) {
            (Some(LegState::Prepared { .. }), true) => {
                let applied = part.commit_learnt(&mut cx.out, tx);
                if applied {
                    cx.send(spec.coord, PaxosMsg::Ack { tx });
                }
            }
            (Some(LegState::Prepared { .. }), false) => part.abort(&mut cx.out, tx),
            // The coordinator's own part took the money before it knew the outcome (a
            // credit only a commit sends), and its ack to itself was lost with a crash
            // (acks are not logged): it acks itself now, or it would wait for ever.
            (Some(LegState::Committed), true) if spec.coord == cx.me() => {
                self.on_ack(cx, cx.me(), tx)
            }
            _ => {}
        }
    }

    /// A participant (or anyone) told the outcome.
    fn on_decide(&mut self, part: &mut Participant, cx: &mut Cx, tx: TxnId, commit: bool) {
        let Some(px) = self.txs.get_mut(&tx) else { return };
        let (spec, acceptors) = (px.spec.clone(), px.acceptors);
        if px.decided.is_none() {
            px.decided = Some(commit);
            cx.out
                .log(PaxosRecord::Decision { spec: spec.clone(), acceptors, commit }, Force::Lazy);
            self.apply(part, cx, &spec, commit);
        } else if commit && part.applied(tx) {
            if cx.out.relay {
                for p in spec.payments_from(cx.me()) {
                    cx.out.pay(tx, p);
                }
            }
            cx.send(spec.coord, PaxosMsg::Ack { tx });
        }
    }

    /// Coordinator: a participant has applied the commit.
    fn on_ack(&mut self, cx: &mut Cx, from: NodeId, tx: TxnId) {
        let Some(px) = self.txs.get_mut(&tx).filter(|p| p.coordinating) else { return };
        px.acks.insert(from);
        if !px.ended && px.spec.participants().all(|p| px.acks.contains(&p)) {
            px.ended = true;
            cx.out.log(PaxosRecord::End { tx }, Force::Lazy);
        }
    }

    /// Whoever knows the outcome says it.
    fn on_decision_req(&mut self, cx: &mut Cx, from: NodeId, tx: TxnId) {
        if let Some(commit) = self.txs.get(&tx).and_then(|p| p.decided) {
            cx.send(from, PaxosMsg::Decide { tx, commit });
        }
    }
}

impl CommitProtocol for PaxosCommit {
    type Msg = PaxosMsg;
    const PROTOCOL: Protocol = Protocol::Paxos;

    /// This node coordinates `spec`. A participant coordinator votes at once and accepts
    /// its own vote (both forced); a NO aborts before anything leaves.
    fn start(&mut self, part: &mut Participant, cx: &mut Cx, spec: &TxSpec, nodes: &[NodeId]) {
        let acceptors = acceptors(spec, nodes);
        let me = cx.me();
        let px = self.px(spec, acceptors);
        px.coordinating = true;
        let mut own = None;
        if spec.is_participant(me) {
            if let Some(reason) = part.vote(spec) {
                px.no = Some(reason);
                px.decided = Some(false);
                cx.out.decided(spec.tx, TxOutcome::Aborted(reason));
                return;
            }
            cx.out.log(PaxosRecord::Prepared { spec: spec.clone(), acceptors }, Force::Now);
            part.prepare(spec, Protocol::Paxos);
            let a = Accept { inst: me, bal: Ballot { n: 0, node: me }, prepared: true };
            acceptor::accept(self.txs.get_mut(&spec.tx).expect("just made"), cx, a);
            own = Some(a);
        }
        for p in spec.participants().filter(|&p| p != me) {
            cx.push_send(p, PaxosMsg::Prepare { spec: spec.clone(), acceptors, own });
        }
        self.learn(part, cx, spec.tx);
    }

    fn on_message(&mut self, part: &mut Participant, cx: &mut Cx, from: NodeId, m: PaxosMsg) {
        match m {
            PaxosMsg::Prepare { spec, acceptors, own } => {
                self.on_prepare(part, cx, from, spec, acceptors, own)
            }
            PaxosMsg::Phase2a { tx, accept } => {
                let Some(px) = self.txs.get_mut(&tx) else { return };
                acceptor::on_phase2a(px, cx, from, accept);
            }
            m @ PaxosMsg::Phase2b { .. } => self.on_phase2b(part, cx, from, m),
            PaxosMsg::Phase1a { tx: _, bal, spec, acceptors } => {
                acceptor::on_phase1a(self.px(&spec, acceptors), cx, from, bal)
            }
            PaxosMsg::Phase1b { tx, bal, last } => self.on_promise(cx, from, tx, bal, last),
            PaxosMsg::DecisionReq { tx } => self.on_decision_req(cx, from, tx),
            PaxosMsg::Decide { tx, commit } => self.on_decide(part, cx, tx, commit),
            PaxosMsg::Ack { tx } => self.on_ack(cx, from, tx),
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
        if let Some(px) = self.txs.get_mut(&tx) {
            px.decided.get_or_insert(true);
        }
        if ack {
            let coord = part.spec(tx).expect("a credited leg").coord;
            cx.send(coord, PaxosMsg::Ack { tx });
        }
    }

    /// Time is up for `tx` here: a node that knows the outcome tells it again; one that
    /// does not leads a higher ballot.
    fn on_timeout(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        tx: TxnId,
        _reason: AbortReason,
        _reach: &[NodeId],
    ) {
        let Some(px) = self.txs.get_mut(&tx) else { return };
        if let Some(commit) = px.decided {
            let (spec, acks) = (px.spec.clone(), px.acks.clone());
            let paid = part.applied(tx);
            cx.tell_decision(&spec, &acks, commit, paid, PaxosMsg::Decide { tx, commit });
            return;
        }
        let seen = px.promised.iter().copied().chain([px.ballot, px.seen]).flatten();
        let top = seen.map(|b| b.n).max().unwrap_or(0);
        let bal = Ballot { n: top + 1, node: cx.me() };
        let (spec, acceptors) = (px.spec.clone(), px.acceptors);
        cx.out.log(PaxosRecord::Ballot { spec: spec.clone(), acceptors, bal }, Force::Now);
        px.ballot = Some(bal);
        px.lead = Some(Lead { bal, promises: BTreeMap::new(), proposed: false });
        for &acc in &acceptors {
            cx.send(acc, PaxosMsg::Phase1a { tx, bal, spec: spec.clone(), acceptors });
        }
    }

    fn replay(&mut self, part: &mut Participant, rec: &Record) {
        if let Record::Paxos(r) = rec {
            self.replay_paxos(part, r);
        }
    }

    /// After a restart: a participant in doubt asks the others; a decided coordinator
    /// finishes; the rest waits for timeouts, which lead ballots.
    fn recovered(&mut self, part: &mut Participant, cx: &mut Cx) {
        self.recover(part, cx)
    }
}

impl Facts for PaxosCommit {
    fn knows(&self, tx: TxnId) -> bool {
        self.txs.contains_key(&tx)
    }

    fn decision(&self, tx: TxnId) -> Option<TxOutcome> {
        let p = self.txs.get(&tx)?;
        p.decided.map(|c| {
            if c {
                TxOutcome::Committed
            } else {
                TxOutcome::Aborted(p.no.unwrap_or(AbortReason::NodeDown))
            }
        })
    }

    /// The outcome it knows, or a coordinator still waiting.
    fn state(&self, _part: &Participant, tx: TxnId) -> Option<TxState> {
        let p = self.txs.get(&tx)?;
        match p.decided {
            Some(true) => Some(TxState::Committed),
            Some(false) => Some(TxState::Aborted),
            None if p.coordinating => Some(TxState::Voting),
            None => None,
        }
    }

    /// Coordinating (until every ack), or leading a ballot that has not decided.
    fn waiting(&self) -> Vec<TxnId> {
        self.txs
            .iter()
            .filter(|(_, p)| {
                (p.coordinating && !p.ended && p.decided != Some(false))
                    || (p.lead.is_some() && p.decided.is_none())
            })
            .map(|(tx, _)| *tx)
            .collect()
    }

    fn finished(&self, tx: TxnId) -> bool {
        self.txs.get(&tx).is_some_and(|p| p.coordinating && (p.decided == Some(false) || p.ended))
    }

    fn members(&self, tx: TxnId) -> Vec<NodeId> {
        let Some(p) = self.txs.get(&tx) else { return Vec::new() };
        let mut v = p.spec.members();
        v.extend(p.acceptors);
        v.sort();
        v.dedup();
        v
    }

    fn decided(&self) -> Vec<TxnId> {
        self.txs.iter().filter(|(_, p)| p.decided.is_some()).map(|(tx, _)| *tx).collect()
    }
}
