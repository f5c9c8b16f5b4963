//! A node's part in every atomic transfer: the account and legs ([`Legs`]) that all
//! protocols share, and the three protocol machines ([`TwoPc`], [`ThreePc`],
//! [`PaxosCommit`]), behind one face, [`TxNode`]. It routes each message to the machine
//! that runs its transaction, replays the log through all of them, and answers the
//! driver's and the master's questions (decision, state, who waits on what).
//!
//! A machine never sees another's transactions; what they share is written once in
//! `legs.rs`: escrow holds, the debit that sends the money in one `Credit`, the credit
//! applied once, the release of an abort.

use super::effect::TxEffect;
use super::legs::{Legs, PartState};
use super::paxos_commit::PaxosCommit;
use super::record::TxRecord;
use super::three_pc::ThreePc;
use super::two_pc::{CoordState, TwoPc};
use crate::ids::{Amount, NodeId, TxnId};
use crate::wire::{AbortReason, CrashPoint, Protocol, TxMsg, TxOutcome, TxSpec, TxState};
use std::collections::{BTreeSet, VecDeque};

/// What a machine's step can do: send (to another node, or to this node's other roles
/// at once), log, reach a crash point, report a decision.
pub struct Ctx<'a> {
    /// This node.
    pub me: NodeId,
    /// Live mode's relaying (see [`TxNode::set_relay`]).
    pub relay: bool,
    /// The effects, in order.
    pub out: &'a mut Vec<TxEffect>,
    /// Messages from this node to itself, handled at once, in order, after the step.
    local: VecDeque<TxMsg>,
}

impl Ctx<'_> {
    /// Sends `msg` to `to`: on the channel, or (to this node) at once after this step.
    pub fn send(&mut self, to: NodeId, msg: TxMsg) {
        if to == self.me {
            self.local.push_back(msg);
        } else {
            self.out.push(TxEffect::Send { to, msg });
        }
    }

    /// Sends `msg` on the channel to `to` (never this node).
    pub fn push_send(&mut self, to: NodeId, msg: TxMsg) {
        debug_assert_ne!(to, self.me, "a node has no channel to itself");
        self.out.push(TxEffect::Send { to, msg });
    }

    /// Appends `rec` to the log; `force`: durable before anything after it leaves.
    pub fn log(&mut self, rec: TxRecord, force: bool) {
        self.out.push(TxEffect::Log { rec, force });
    }

    /// A crash point is reached.
    pub fn point(&mut self, p: CrashPoint) {
        self.out.push(TxEffect::Point(p));
    }

    /// This node decided `tx`.
    pub fn decided(&mut self, tx: TxnId, outcome: TxOutcome) {
        self.out.push(TxEffect::Decided { tx, outcome });
    }

    /// Tells the decision on `spec` (again) to every participant but this node and those
    /// in `acked`: as `decision`, or, for a commit and when this node is the debit side,
    /// as the money itself to the credit side (a `Credit` is applied once there).
    pub fn tell_decision(
        &mut self,
        spec: TxSpec,
        acked: &BTreeSet<NodeId>,
        commit: bool,
        decision: TxMsg,
    ) {
        for p in spec.participants() {
            if p == self.me || acked.contains(&p) {
                continue;
            }
            let msg = if commit && p == spec.to && spec.from == self.me {
                spec.credit()
            } else {
                decision
            };
            self.push_send(p, msg);
        }
    }
}

/// A node's state in every transfer: its money, its legs, and the protocols' machines.
#[derive(Debug, Clone)]
pub struct TxNode {
    id: NodeId,
    legs: Legs,
    two: TwoPc,
    three: ThreePc,
    paxos: PaxosCommit,
    /// Live mode: a crash may lose any message, so a credit side that knows the commit
    /// and lacks the money tells the debit side the decision, and a debit side told the
    /// decision again sends the money again (scripts recover lost messages otherwise).
    relay: bool,
}

impl TxNode {
    /// A new node; the caller logs [`TxRecord::Opened`] first.
    pub fn new(id: NodeId, balance: Amount) -> TxNode {
        TxNode {
            id,
            legs: Legs::new(id, balance),
            two: TwoPc::default(),
            three: ThreePc::default(),
            paxos: PaxosCommit::default(),
            relay: false,
        }
    }

    /// Live mode's relaying of decisions and money (see the field `relay`).
    pub fn set_relay(&mut self, on: bool) {
        self.relay = on;
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// All money the node owns, held money included.
    pub fn balance(&self) -> Amount {
        self.legs.balance()
    }

    /// Money reserved by prepared debits.
    pub fn held(&self) -> Amount {
        self.legs.held()
    }

    /// Money available to spend: the balance less what transactions hold.
    pub fn available(&self) -> Amount {
        self.legs.available()
    }

    /// A plain `Send` debits `amount` if it is available (held money is not).
    pub fn withdraw(&mut self, amount: Amount) -> bool {
        self.legs.withdraw(amount)
    }

    /// A plain Transfer arrived.
    pub fn deposit(&mut self, amount: Amount) {
        self.legs.deposit(amount)
    }

    /// The participant state of `tx` here, if any.
    pub fn part(&self, tx: TxnId) -> Option<PartState> {
        self.legs.part(tx)
    }

    /// Whether this participant applied `tx`: debited it, or credited it.
    pub fn applied(&self, tx: TxnId) -> bool {
        self.legs.applied(tx)
    }

    /// The two-phase-commit coordinator state of `tx` here, if any.
    pub fn coord(&self, tx: TxnId) -> Option<&CoordState> {
        self.two.coord(tx)
    }

    /// The protocol `tx` runs, if this node knows it.
    pub fn protocol(&self, tx: TxnId) -> Option<Protocol> {
        if self.two.coord(tx).is_some() {
            Some(Protocol::TwoPc)
        } else if self.three.knows(tx) {
            Some(Protocol::ThreePc)
        } else if self.paxos.knows(tx) {
            Some(Protocol::Paxos)
        } else {
            self.legs.part(tx).map(|_| self.legs.protocol(tx))
        }
    }

    /// Transactions this node voted YES on and has no decision for.
    pub fn in_doubt(&self) -> Vec<TxnId> {
        self.legs.in_doubt()
    }

    /// Transactions this node waits on: in doubt as a participant, voting or missing
    /// acks as a coordinator, terminating or leading a ballot.
    pub fn waiting(&self) -> Vec<TxnId> {
        let mut v = self.legs.in_doubt();
        v.extend(self.two.waiting());
        v.extend(self.three.waiting());
        v.extend(self.paxos.waiting());
        v.sort();
        v.dedup();
        v
    }

    /// The nodes of transaction `tx` as far as this node knows them.
    fn members(&self, tx: TxnId) -> Vec<NodeId> {
        let spec = self.two.spec(tx).or_else(|| self.three.spec(tx)).or(self.legs.spec(tx));
        let mut v: Vec<NodeId> = spec.map_or(Vec::new(), |s| vec![s.coord, s.from, s.to]);
        v.extend(self.paxos.acceptors(tx).into_iter().flatten());
        v
    }

    /// Transactions this node waits on (see [`TxNode::waiting`]) in which `peer` takes
    /// part: after `peer` restarts, what they need must be sent again.
    pub fn waiting_with(&self, peer: NodeId) -> Vec<TxnId> {
        self.waiting().into_iter().filter(|&tx| self.members(tx).contains(&peer)).collect()
    }

    /// Transactions whose money `peer` owes this node as far as it knows.
    pub fn owed_by(&self, peer: NodeId) -> Vec<TxnId> {
        self.legs.owed_by(peer)
    }

    /// The money of `tx` again, if this node is its debit side and has paid it.
    pub fn credit_again(&self, tx: TxnId) -> Option<(NodeId, TxMsg)> {
        self.legs.credit_again(tx)
    }

    /// Whether this node, as `tx`'s coordinator, is done with it: aborted, or committed and
    /// acked by every participant.
    pub fn finished(&self, tx: TxnId) -> bool {
        matches!(self.two.coord(tx), Some(CoordState::Aborted(_) | CoordState::Ended))
            || self.three.finished(tx)
            || self.paxos.finished(tx)
    }

    /// The decision this node took (or learnt, as a leader) on `tx`, if any.
    pub fn decision(&self, tx: TxnId) -> Option<TxOutcome> {
        self.two
            .decision(tx)
            .or_else(|| self.three.decision(tx))
            .or_else(|| self.paxos.decision(tx))
    }

    /// The state of `tx` at this node: its leg's if it is a participant, else its
    /// coordinator's, else what it learnt; `None` if it never heard of `tx` (or voted NO,
    /// which leaves nothing behind).
    pub fn state(&self, tx: TxnId) -> TxState {
        let leg = self.legs.state(tx);
        // A leg's end outranks its pre-commit (recovery replays both records).
        if self.three.pre_committed(tx) && !leg.is_some_and(TxState::is_final) {
            return TxState::PreCommitted;
        }
        if let Some(st) = leg {
            return st;
        }
        match self.two.coord(tx) {
            Some(CoordState::Voting(_)) => return TxState::Voting,
            Some(CoordState::Committed(_) | CoordState::Ended) => return TxState::Committed,
            Some(CoordState::Aborted(_)) => return TxState::Aborted,
            None => {}
        }
        self.three.state(tx).or_else(|| self.paxos.state(tx)).unwrap_or(TxState::None)
    }

    /// The state of `tx` at this node, as `TxStatus` prints it.
    pub fn status(&self, tx: TxnId) -> &'static str {
        self.state(tx).word()
    }

    /// Every transaction that ended here, with how: what `Check` holds against the other
    /// nodes' (committed at one node and aborted at another is a split).
    pub fn ended(&self) -> Vec<(TxnId, TxState)> {
        let mut v: Vec<(TxnId, TxState)> = self.legs.ended().collect();
        for tx in self.two.coords.keys().chain(self.three.decided()).chain(self.paxos.decided()) {
            let st = self.state(*tx);
            if st.is_final() {
                v.push((*tx, st));
            }
        }
        v.sort();
        v.dedup();
        v
    }

    /// This node coordinates `spec` by two-phase commit (a `Transfer` command).
    ///
    /// # Panics
    /// If this node is not `spec.coord`.
    pub fn on_start(&mut self, spec: TxSpec, out: &mut Vec<TxEffect>) {
        self.on_start_with(spec, Protocol::TwoPc, [spec.from, spec.to, spec.coord], out)
    }

    /// This node coordinates `spec` by `protocol`; `acceptors` are Paxos Commit's three.
    ///
    /// # Panics
    /// If this node is not `spec.coord`.
    pub fn on_start_with(
        &mut self,
        spec: TxSpec,
        protocol: Protocol,
        acceptors: [NodeId; 3],
        out: &mut Vec<TxEffect>,
    ) {
        assert_eq!(spec.coord, self.id, "only the coordinator starts a transaction");
        let mut cx = self.ctx(out);
        match protocol {
            Protocol::TwoPc => self.two.on_start(&mut self.legs, &mut cx, spec),
            Protocol::ThreePc => self.three.on_start(&mut self.legs, &mut cx, spec),
            Protocol::Paxos => self.paxos.on_start(&mut self.legs, &mut cx, spec, acceptors),
        }
        self.run_local(cx);
    }

    /// A message arrived from `from`.
    pub fn on_message(&mut self, from: NodeId, msg: TxMsg, out: &mut Vec<TxEffect>) {
        let mut cx = self.ctx(out);
        self.handle(&mut cx, from, msg);
        self.run_local(cx);
    }

    /// Time is up for `tx` here, every other node reachable (see
    /// [`TxNode::on_timeout_reach`]).
    pub fn on_timeout(&mut self, tx: TxnId, reason: AbortReason, out: &mut Vec<TxEffect>) {
        let all = self.members(tx);
        self.on_timeout_reach(tx, reason, &all, out)
    }

    /// Time is up for `tx` here (in a script: nothing is deliverable and a node it waits
    /// on is down, paused or cut off). `reach` are the nodes this one can reach now: the
    /// failure detector that three-phase commit's termination protocol and Paxos
    /// Commit's leaders rely on (two-phase commit needs none).
    pub fn on_timeout_reach(
        &mut self,
        tx: TxnId,
        reason: AbortReason,
        reach: &[NodeId],
        out: &mut Vec<TxEffect>,
    ) {
        let mut cx = self.ctx(out);
        match self.protocol(tx) {
            Some(Protocol::ThreePc) => {
                self.three.on_timeout(&mut self.legs, &mut cx, tx, reason, reach)
            }
            Some(Protocol::Paxos) => self.paxos.on_timeout(&mut self.legs, &mut cx, tx, reach),
            _ => self.two.on_timeout(&mut self.legs, &mut cx, tx, reason),
        }
        self.run_local(cx);
    }

    fn ctx<'a>(&self, out: &'a mut Vec<TxEffect>) -> Ctx<'a> {
        Ctx { me: self.id, relay: self.relay, out, local: VecDeque::new() }
    }

    /// Messages from this node to itself (its own legs) are handled at once, in order.
    fn run_local(&mut self, mut cx: Ctx) {
        while let Some(msg) = cx.local.pop_front() {
            self.handle(&mut cx, self.id, msg);
        }
    }

    /// Routes one message to the machine of its transaction. Shared messages go to the
    /// protocol this node runs the transaction by (a participant knows it from its leg, a
    /// coordinator from its own state).
    fn handle(&mut self, cx: &mut Ctx, from: NodeId, msg: TxMsg) {
        let tx = msg.tx();
        let proto = self.protocol(tx).unwrap_or_default();
        let legs = &mut self.legs;
        match msg {
            TxMsg::ThreePc(m) => self.three.on_message(legs, cx, from, m),
            TxMsg::Paxos(m) => self.paxos.on_message(legs, cx, from, m),
            TxMsg::Credit { tx, amount } => {
                legs.on_credit(cx, tx, amount);
                // The money is the commit: the credit side's machine learns it too.
                if legs.applied(tx) {
                    match proto {
                        Protocol::ThreePc => self.three.credited(legs, tx),
                        Protocol::Paxos => self.paxos.credited(tx),
                        Protocol::TwoPc => {}
                    }
                }
            }
            TxMsg::Prepare { spec } => self.two.on_prepare(legs, cx, spec),
            TxMsg::Vote { tx, no } => match proto {
                Protocol::ThreePc => self.three.on_vote(legs, cx, from, tx, no),
                _ => self.two.on_vote(legs, cx, from, tx, no),
            },
            TxMsg::Decide { tx, commit } => match proto {
                Protocol::ThreePc => self.three.on_decide(legs, cx, tx, commit),
                Protocol::Paxos => self.paxos.on_decide(legs, cx, tx, commit),
                Protocol::TwoPc => self.two.on_decide(legs, cx, tx, commit),
            },
            TxMsg::Ack { tx } => match proto {
                Protocol::ThreePc => self.three.on_ack(legs, cx, from, tx),
                Protocol::Paxos => self.paxos.on_ack(cx, from, tx),
                Protocol::TwoPc => self.two.on_ack(cx, from, tx),
            },
            TxMsg::DecisionReq { tx } => self.two.on_decision_req(cx, from, tx),
        }
    }

    /// Rebuilds a node from its log alone, and says what it must do now (`out`): ask
    /// about every transaction in doubt, and finish every commit it decided.
    ///
    /// # Panics
    /// If the log does not start with [`TxRecord::Opened`].
    pub fn recover(id: NodeId, records: &[TxRecord], out: &mut Vec<TxEffect>) -> TxNode {
        let Some(TxRecord::Opened { balance }) = records.first() else {
            panic!("node {id}: a log starts with Opened")
        };
        let mut n = TxNode::new(id, *balance);
        for rec in &records[1..] {
            match rec {
                TxRecord::Opened { .. } => panic!("node {id}: Opened twice"),
                TxRecord::ThreePc(r) => n.three.replay(&mut n.legs, r),
                TxRecord::Paxos(r) => n.paxos.replay(&mut n.legs, r),
                TxRecord::End { tx } if n.three.knows(*tx) => n.three.end(*tx),
                TxRecord::End { tx } if n.paxos.knows(*tx) => n.paxos.end(*tx),
                TxRecord::Prepared { .. } | TxRecord::Decision { .. } | TxRecord::End { .. } => {
                    n.two.replay(&mut n.legs, rec)
                }
                TxRecord::Committed { .. }
                | TxRecord::Aborted { .. }
                | TxRecord::Sent { .. }
                | TxRecord::Deposited { .. } => n.legs.replay(rec),
            }
        }
        let mut cx = n.ctx(out);
        n.two.recovered(&mut n.legs, &mut cx);
        n.three.recovered(&mut n.legs, &mut cx);
        n.paxos.recovered(&mut n.legs, &mut cx);
        n.run_local(cx);
        n
    }
}
