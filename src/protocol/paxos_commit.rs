//! Paxos Commit of one transfer, at one node, as a pure machine (Gray and Lamport,
//! "Consensus on Transaction Commit", ACM TODS 31(1), 2006), with F = 1.
//!
//! Each participant's vote (prepared, or aborted) is decided by its own Paxos instance on
//! three acceptors: the coordinator and both participants when a third node coordinates,
//! else both participants and the lowest-id node outside the transfer. Ballot `(0, r)`
//! belongs to participant `r`, which skips phase 1 and proposes its own vote. A value is
//! chosen once two acceptors have accepted it at the same ballot; the transfer commits
//! iff both instances chose *prepared*, and aborts iff one chose *aborted*. The money
//! then moves as in the other protocols (`legs`): one `Credit` from the debit side.
//!
//! Messages are bundled where one node plays several parts, so a fault-free transfer
//! coordinated by its debit side costs 3 (+1) messages and 4 forced writes: the
//! coordinator's vote with its own accept, the credit side's vote with its accepts of
//! both votes, the coordinator's accept of that vote (with its debit), the credit.
//!
//! Safety needs only durable promises and accepts (forced before they are answered) and
//! unique ballots (a leader forces each ballot before using it). Timeouts decide
//! liveness alone: a participant or acceptor that times out leads a higher ballot, asks
//! two acceptors what they accepted (phase 1), proposes for each instance the value of
//! the highest ballot found, or *aborted* if none (phase 2), and learns the outcome. So it
//! is safe under every crash, pause and partition, and decides whenever both
//! participants and two acceptors can reach each other.

use super::commit::Ctx;
use super::legs::{Legs, PartState};
use super::record::{PaxosRecord, TxRecord};
use crate::ids::{NodeId, TxnId};
use crate::wire::{
    AbortReason, Accept, Ballot, CrashPoint, PaxosMsg, Protocol, TxMsg, TxOutcome, TxSpec, TxState,
};
use std::collections::{BTreeMap, BTreeSet};

/// A ballot this node leads.
#[derive(Debug, Clone)]
struct Lead {
    bal: Ballot,
    /// Phase 1's answers: per acceptor, what it had accepted in each instance.
    promises: BTreeMap<NodeId, [Option<Accept>; 2]>,
    /// Phase 2 has begun.
    proposed: bool,
}

/// One transfer as this node sees it, in all its roles.
#[derive(Debug, Clone)]
struct Px {
    spec: TxSpec,
    acceptors: [NodeId; 3],
    /// This node coordinates it (the first leader).
    coordinating: bool,
    /// As an acceptor, per instance: the ballot promised (nothing lower is accepted), and
    /// what was accepted. Ballot 0 differs per instance (each participant owns its own),
    /// so promises are kept per instance, as in the TLA+ specification.
    promised: [Option<Ballot>; 2],
    accepted: [Option<Accept>; 2],
    /// The highest ballot this node has led.
    ballot: Option<Ballot>,
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
        Px {
            spec,
            acceptors,
            coordinating: false,
            promised: [None; 2],
            accepted: [None; 2],
            ballot: None,
            lead: None,
            heard: BTreeMap::new(),
            no: None,
            decided: None,
            acks: BTreeSet::new(),
            ended: false,
        }
    }

    /// The instance of participant `rm`: 0 for the debit side, 1 for the credit side.
    fn inst(&self, rm: NodeId) -> usize {
        usize::from(rm != self.spec.from)
    }

    /// The value chosen in instance `i`, if any: two acceptors at one ballot.
    fn chosen(&self, i: usize) -> Option<bool> {
        self.heard
            .iter()
            .find(|((j, _, _), who)| *j == i && who.len() >= 2)
            .map(|((_, _, v), _)| *v)
    }
}

/// The transactions this node runs by Paxos Commit, in any role.
#[derive(Debug, Clone, Default)]
pub struct PaxosCommit {
    txs: BTreeMap<TxnId, Px>,
}

impl PaxosCommit {
    /// Whether this node knows `tx` as a Paxos Commit transaction.
    pub fn knows(&self, tx: TxnId) -> bool {
        self.txs.contains_key(&tx)
    }

    /// The acceptors of `tx`, if this node knows them.
    pub fn acceptors(&self, tx: TxnId) -> Option<[NodeId; 3]> {
        self.txs.get(&tx).map(|p| p.acceptors)
    }

    /// The outcome this node knows.
    pub fn decision(&self, tx: TxnId) -> Option<TxOutcome> {
        let p = self.txs.get(&tx)?;
        p.decided.map(|c| {
            if c {
                TxOutcome::Committed
            } else {
                TxOutcome::Aborted(p.no.unwrap_or(AbortReason::NodeDown))
            }
        })
    }

    /// Whether this node, as coordinator, is done with `tx`.
    pub fn finished(&self, tx: TxnId) -> bool {
        self.txs.get(&tx).is_some_and(|p| p.coordinating && (p.decided == Some(false) || p.ended))
    }

    /// A non-participant's state: the outcome it knows, or a coordinator still waiting.
    pub fn state(&self, tx: TxnId) -> Option<TxState> {
        let p = self.txs.get(&tx)?;
        match p.decided {
            Some(true) => Some(TxState::Committed),
            Some(false) => Some(TxState::Aborted),
            None if p.coordinating => Some(TxState::Voting),
            None => None,
        }
    }

    /// Transactions whose outcome this node knows.
    pub fn decided(&self) -> impl Iterator<Item = &TxnId> {
        self.txs.iter().filter(|(_, p)| p.decided.is_some()).map(|(tx, _)| tx)
    }

    /// Transactions waited on here, beyond the legs in doubt: coordinating (until every
    /// ack), or leading a ballot that has not decided.
    pub fn waiting(&self) -> impl Iterator<Item = TxnId> + '_ {
        self.txs
            .iter()
            .filter(|(_, p)| {
                (p.coordinating && !p.ended && p.decided != Some(false))
                    || (p.lead.is_some() && p.decided.is_none())
            })
            .map(|(tx, _)| *tx)
    }

    fn px(&mut self, spec: TxSpec, acceptors: [NodeId; 3]) -> &mut Px {
        self.txs.entry(spec.tx).or_insert_with(|| Px::new(spec, acceptors))
    }

    /// This node coordinates `spec` on `acceptors`. A participant coordinator votes at
    /// once and accepts its own vote (both forced); a NO aborts before anything leaves.
    pub(super) fn on_start(
        &mut self,
        legs: &mut Legs,
        cx: &mut Ctx,
        spec: TxSpec,
        acceptors: [NodeId; 3],
    ) {
        let px = self.px(spec, acceptors);
        px.coordinating = true;
        let mut own = None;
        if spec.participants().contains(&cx.me) {
            if let Some(reason) = legs.vote_on(spec) {
                px.no = Some(reason);
                px.decided = Some(false);
                cx.decided(spec.tx, TxOutcome::Aborted(reason));
                return;
            }
            cx.log(TxRecord::Paxos(PaxosRecord::Prepared { spec, acceptors }), true);
            legs.take_prepared(spec, Protocol::Paxos);
            let a = Accept { inst: cx.me, bal: Ballot { n: 0, node: cx.me }, prepared: true };
            accept(self.txs.get_mut(&spec.tx).expect("just made"), cx, a);
            own = Some(a);
        }
        let me = cx.me;
        for p in spec.participants().into_iter().filter(|&p| p != me) {
            cx.push_send(p, TxMsg::Paxos(PaxosMsg::Prepare { spec, acceptors, own }));
        }
    }

    pub(super) fn on_message(&mut self, legs: &mut Legs, cx: &mut Ctx, from: NodeId, m: PaxosMsg) {
        match m {
            PaxosMsg::Prepare { spec, acceptors, own } => {
                self.on_prepare(legs, cx, from, spec, acceptors, own)
            }
            PaxosMsg::Phase2a { tx, accept: a } => {
                let Some(px) = self.txs.get_mut(&tx) else { return };
                if accept(px, cx, a) {
                    let accepted = [Some(a), None];
                    let reply = PaxosMsg::Phase2b { tx, accepted, vote: None, no: None };
                    cx.send(from, TxMsg::Paxos(reply));
                    cx.point(CrashPoint::AfterAccept);
                }
            }
            PaxosMsg::Phase2b { tx, accepted, vote, no } => {
                let Some(px) = self.txs.get_mut(&tx) else {
                    // A NO vote decides the transfer wherever it lands: no ballot can choose
                    // prepared for that participant's instance. A coordinator restarted with
                    // nothing logged is the one to say so (fault script 7367).
                    if let (Some(r), Some(v)) = (no, vote) {
                        if !v.prepared && v.inst == from {
                            cx.decided(tx, TxOutcome::Aborted(r));
                        }
                    }
                    return;
                };
                for a in accepted.into_iter().flatten() {
                    let i = px.inst(a.inst);
                    px.heard.entry((i, a.bal, a.prepared)).or_default().insert(from);
                }
                if no.is_some() {
                    px.no = no;
                }
                if let Some(v) = vote {
                    if accept(px, cx, v) {
                        cx.point(CrashPoint::AfterAccept);
                    }
                }
                self.learn(legs, cx, tx);
            }
            PaxosMsg::Phase1a { tx, bal, spec, acceptors } => {
                let px = self.px(spec, acceptors);
                if px.promised.iter().all(|p| p.is_none_or(|p| bal > p)) {
                    px.promised = [Some(bal); 2];
                    cx.log(TxRecord::Paxos(PaxosRecord::Promise { spec, acceptors, bal }), true);
                    let last = px.accepted;
                    cx.send(from, TxMsg::Paxos(PaxosMsg::Phase1b { tx, bal, last }));
                }
            }
            PaxosMsg::Phase1b { tx, bal, last } => self.on_promise(cx, from, tx, bal, last),
            PaxosMsg::DecisionReq { tx } => self.on_decision_req(cx, from, tx),
        }
    }

    /// Participant: asked to vote (with the leader's own vote to accept, when it has one).
    fn on_prepare(
        &mut self,
        legs: &mut Legs,
        cx: &mut Ctx,
        from: NodeId,
        spec: TxSpec,
        acceptors: [NodeId; 3],
        own: Option<Accept>,
    ) {
        let tx = spec.tx;
        let px = self.px(spec, acceptors);
        if let Some(a) = own {
            accept(px, cx, a);
        }
        let mine = px.accepted[px.inst(cx.me)];
        if let Some(v) = mine.filter(|a| a.bal.n == 0 && a.inst == cx.me) {
            // Asked again: the same answer.
            let reply = PaxosMsg::Phase2b { tx, accepted: px.accepted, vote: Some(v), no: None };
            cx.send(from, TxMsg::Paxos(reply));
            return;
        }
        if px.decided.is_some() || legs.part(tx).is_some() {
            return;
        }
        cx.point(CrashPoint::BeforeVote);
        let no = legs.vote_on(spec);
        if no.is_none() {
            cx.log(TxRecord::Paxos(PaxosRecord::Prepared { spec, acceptors }), true);
            legs.take_prepared(spec, Protocol::Paxos);
        }
        let v = Accept { inst: cx.me, bal: Ballot { n: 0, node: cx.me }, prepared: no.is_none() };
        let px = self.txs.get_mut(&tx).expect("made above");
        accept(px, cx, v);
        let reply = PaxosMsg::Phase2b { tx, accepted: px.accepted, vote: Some(v), no };
        cx.send(from, TxMsg::Paxos(reply));
        if no.is_none() {
            cx.point(CrashPoint::AfterVote);
        }
        cx.point(CrashPoint::AfterAccept);
    }

    /// A leader's phase 1 answer; with two, it proposes for each instance the value of the
    /// highest ballot accepted, or aborted.
    fn on_promise(
        &mut self,
        cx: &mut Ctx,
        from: NodeId,
        tx: TxnId,
        bal: Ballot,
        last: [Option<Accept>; 2],
    ) {
        let Some(px) = self.txs.get_mut(&tx) else { return };
        let Some(lead) = px.lead.as_mut().filter(|l| l.bal == bal && !l.proposed) else { return };
        lead.promises.insert(from, last);
        if lead.promises.len() < 2 {
            return;
        }
        lead.proposed = true;
        let rms = [px.spec.from, px.spec.to];
        for (i, rm) in rms.into_iter().enumerate() {
            let found = lead.promises.values().filter_map(|l| l[i]).max_by_key(|a| a.bal);
            let prepared = found.is_some_and(|a| a.prepared);
            let a = Accept { inst: rm, bal, prepared };
            for &acc in &px.acceptors {
                cx.send(acc, TxMsg::Paxos(PaxosMsg::Phase2a { tx, accept: a }));
            }
        }
    }

    /// A learner holds what it heard: both instances chosen, the transfer is decided.
    fn learn(&mut self, legs: &mut Legs, cx: &mut Ctx, tx: TxnId) {
        let Some(px) = self.txs.get_mut(&tx) else { return };
        if px.decided.is_some() {
            return;
        }
        let (a, b) = (px.chosen(0), px.chosen(1));
        let commit = match (a, b) {
            (Some(true), Some(true)) => true,
            (Some(false), _) | (_, Some(false)) => false,
            _ => return,
        };
        self.decide(legs, cx, tx, commit);
    }

    /// This node knows the outcome: reported, applied to its leg, told to the
    /// participants (the money, when it is the debit side and commits, tells the credit
    /// side).
    ///
    /// The coordinator (the first leader) reaches chapter 5's decision points here:
    /// `before-decision` before it logs what it learnt, `after-decision` once logged with
    /// nothing sent, `mid-commit` with the outcome sent to one participant only.
    fn decide(&mut self, legs: &mut Legs, cx: &mut Ctx, tx: TxnId, commit: bool) {
        let px = self.txs.get_mut(&tx).expect("known");
        let coordinating = px.coordinating;
        if coordinating {
            cx.point(CrashPoint::BeforeDecision);
        }
        px.decided = Some(commit);
        let (spec, acceptors) = (px.spec, px.acceptors);
        let reason = px.no.unwrap_or(AbortReason::NodeDown);
        cx.log(TxRecord::Paxos(PaxosRecord::Decision { spec, acceptors, commit }), false);
        if coordinating {
            cx.point(CrashPoint::AfterDecision);
        }
        cx.decided(tx, if commit { TxOutcome::Committed } else { TxOutcome::Aborted(reason) });
        self.apply(legs, cx, spec, commit);
        let me = cx.me;
        let mut told = 0;
        for rm in spec.participants().into_iter().filter(|&r| r != me) {
            if commit && rm == spec.to && spec.from == cx.me {
                continue;
            }
            if told > 0 && coordinating {
                cx.point(CrashPoint::MidCommit);
            }
            cx.push_send(rm, TxMsg::Decide { tx, commit });
            told += 1;
        }
    }

    /// The outcome applied to this node's leg.
    fn apply(&mut self, legs: &mut Legs, cx: &mut Ctx, spec: TxSpec, commit: bool) {
        match (legs.part(spec.tx), commit) {
            (Some(PartState::Prepared { .. }), true) if spec.from == cx.me => {
                legs.commit_debit(cx, spec)
            }
            (Some(PartState::Prepared { .. }), true) => legs.commit_known(spec),
            (Some(PartState::Prepared { .. }), false) => legs.abort_leg(cx, spec),
            // The coordinator's own leg took the money before it knew the outcome (a
            // credit only a commit sends), and its ack to itself was lost with a crash
            // (acks are not logged): it acks itself now, or it would wait for ever.
            (Some(PartState::Committed), true) if spec.coord == cx.me => {
                self.on_ack(cx, cx.me, spec.tx)
            }
            _ => {}
        }
    }

    /// A participant (or anyone) told the outcome.
    pub(super) fn on_decide(&mut self, legs: &mut Legs, cx: &mut Ctx, tx: TxnId, commit: bool) {
        let Some(px) = self.txs.get_mut(&tx) else { return };
        if px.decided.is_none() {
            px.decided = Some(commit);
            let (spec, acceptors) = (px.spec, px.acceptors);
            cx.log(TxRecord::Paxos(PaxosRecord::Decision { spec, acceptors, commit }), false);
            self.apply(legs, cx, spec, commit);
        } else if commit && legs.applied(tx) {
            let spec = px.spec;
            if cx.relay && spec.from == cx.me {
                cx.push_send(spec.to, spec.credit());
            }
            cx.send(spec.coord, TxMsg::Ack { tx });
        }
    }

    /// The credit side applied the money, which only a commit sends.
    pub(super) fn credited(&mut self, tx: TxnId) {
        if let Some(px) = self.txs.get_mut(&tx) {
            px.decided.get_or_insert(true);
        }
    }

    /// Coordinator: a participant has applied the commit.
    pub(super) fn on_ack(&mut self, cx: &mut Ctx, from: NodeId, tx: TxnId) {
        let Some(px) = self.txs.get_mut(&tx).filter(|p| p.coordinating) else { return };
        px.acks.insert(from);
        if !px.ended && px.spec.participants().iter().all(|p| px.acks.contains(p)) {
            px.ended = true;
            cx.log(TxRecord::End { tx }, false);
        }
    }

    /// Whoever knows the outcome says it.
    fn on_decision_req(&mut self, cx: &mut Ctx, from: NodeId, tx: TxnId) {
        if let Some(commit) = self.txs.get(&tx).and_then(|p| p.decided) {
            cx.send(from, TxMsg::Decide { tx, commit });
        }
    }

    /// Time is up for `tx` here: a node that knows the outcome tells it again; one that
    /// does not leads a higher ballot.
    pub(super) fn on_timeout(
        &mut self,
        _legs: &mut Legs,
        cx: &mut Ctx,
        tx: TxnId,
        _reach: &[NodeId],
    ) {
        let Some(px) = self.txs.get_mut(&tx) else { return };
        if let Some(commit) = px.decided {
            cx.tell_decision(px.spec, &px.acks, commit, TxMsg::Decide { tx, commit });
            return;
        }
        let seen = [px.ballot, px.promised[0], px.promised[1]];
        let top = seen.into_iter().flatten().map(|b| b.n).max().unwrap_or(0);
        let bal = Ballot { n: top + 1, node: cx.me };
        let (spec, acceptors) = (px.spec, px.acceptors);
        cx.log(TxRecord::Paxos(PaxosRecord::Ballot { spec, acceptors, bal }), true);
        px.ballot = Some(bal);
        px.lead = Some(Lead { bal, promises: BTreeMap::new(), proposed: false });
        for &acc in &acceptors {
            cx.send(acc, TxMsg::Paxos(PaxosMsg::Phase1a { tx, bal, spec, acceptors }));
        }
    }

    /// Replays a record of Paxos Commit's.
    pub(super) fn replay(&mut self, legs: &mut Legs, rec: &PaxosRecord) {
        match *rec {
            PaxosRecord::Prepared { spec, acceptors } => {
                self.px(spec, acceptors);
                legs.take_prepared(spec, Protocol::Paxos);
            }
            PaxosRecord::Promise { spec, acceptors, bal } => {
                let px = self.px(spec, acceptors);
                for p in &mut px.promised {
                    *p = (*p).max(Some(bal));
                }
            }
            PaxosRecord::Accept { spec, acceptors, accept: a } => {
                let px = self.px(spec, acceptors);
                let i = px.inst(a.inst);
                px.promised[i] = px.promised[i].max(Some(a.bal));
                px.accepted[i] = Some(a);
                px.coordinating |= spec.coord == legs.id;
            }
            PaxosRecord::Ballot { spec, acceptors, bal } => {
                let px = self.px(spec, acceptors);
                px.ballot = px.ballot.max(Some(bal));
            }
            PaxosRecord::Decision { spec, acceptors, commit } => {
                let px = self.px(spec, acceptors);
                px.decided = Some(commit);
                px.coordinating |= spec.coord == legs.id;
                match (legs.part(spec.tx), commit) {
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
        if let Some(px) = self.txs.get_mut(&tx) {
            px.ended = true;
        }
    }

    /// After a restart: a participant in doubt asks the others; a decided coordinator
    /// finishes; the rest waits for timeouts, which lead ballots.
    pub(super) fn recovered(&mut self, legs: &mut Legs, cx: &mut Ctx) {
        for (&tx, px) in &self.txs {
            let spec = px.spec;
            if matches!(legs.part(tx), Some(PartState::Prepared { commit_known: false }))
                && px.decided.is_none()
            {
                let mut others: Vec<NodeId> = px
                    .acceptors
                    .iter()
                    .copied()
                    .chain([spec.coord])
                    .filter(|&n| n != cx.me)
                    .collect();
                others.sort();
                others.dedup();
                for n in others {
                    cx.push_send(n, TxMsg::Paxos(PaxosMsg::DecisionReq { tx }));
                }
            }
            // A coordinator that logged its decision reports it again: the crash may
            // have come before the report, and the participants will ask for it.
            match px.decided {
                Some(true) if px.coordinating && !px.ended => cx.decided(tx, TxOutcome::Committed),
                Some(false) if px.coordinating && !px.ended => {
                    let reason = px.no.unwrap_or(AbortReason::NodeDown);
                    cx.decided(tx, TxOutcome::Aborted(reason))
                }
                _ => {}
            }
        }
        let debit_commits: Vec<TxSpec> = self
            .txs
            .values()
            .filter(|p| p.decided == Some(true) && p.spec.from == cx.me)
            .map(|p| p.spec)
            .filter(|s| matches!(legs.part(s.tx), Some(PartState::Prepared { .. })))
            .collect();
        for spec in debit_commits {
            legs.commit_debit(cx, spec); // decided, not applied before the crash
        }
        // A coordinator's own leg applied before the crash acks itself again: acks are
        // not logged, and no one else would send this one.
        let own: Vec<TxnId> = self
            .txs
            .iter()
            .filter(|(_, p)| p.coordinating && !p.ended && p.decided == Some(true))
            .filter(|(tx, p)| p.spec.participants().contains(&cx.me) && legs.applied(**tx))
            .map(|(tx, _)| *tx)
            .collect();
        for tx in own {
            self.on_ack(cx, cx.me, tx);
        }
    }
}

/// An acceptor accepts `a` if it promised nothing higher: forced, and counted by itself
/// as a learner. Returns whether it accepted.
fn accept(px: &mut Px, cx: &mut Ctx, a: Accept) -> bool {
    let i = px.inst(a.inst);
    if px.promised[i].is_some_and(|p| a.bal < p) || !px.acceptors.contains(&cx.me) {
        return false;
    }
    px.promised[i] = Some(a.bal);
    px.accepted[i] = Some(a);
    let (spec, acceptors) = (px.spec, px.acceptors);
    cx.log(TxRecord::Paxos(PaxosRecord::Accept { spec, acceptors, accept: a }), true);
    px.heard.entry((i, a.bal, a.prepared)).or_default().insert(cx.me);
    true
}
