//! The one interface of the atomic-commit family: [`CommitProtocol`], which two-phase
//! commit (`two_pc`), three-phase commit (`three_pc`) and Paxos Commit (`paxos_commit`)
//! implement over transactions of any number of parts, and [`Machine`], one node running
//! one of them, which the simulation (`tests/commit_sim.rs`) drives (and a model checker can: the states
//! are plain data).
//! The node's [`crate::protocol::Branch`] runs all three at once over one
//! [`Participant`], through the same step functions ([`run_step`], [`deliver`]).
//!
//! A protocol owns its messages (`Self::Msg`), its records and its rules; what every
//! participant does alike (escrow, the money's way, payments applied once) is the
//! [`Participant`]'s. States are plain data (`Clone`, `Eq`, `Hash`): a model checker
//! explores them.

use super::effect::{Ctx, Effect, Out};
use super::participant::Participant;
use super::record::Record;
use crate::ids::{Amount, NodeId, TxnId};
use crate::wire::{AbortReason, CommitMsg, Protocol, TxOutcome, TxSpec, TxState};
use std::fmt::Debug;
use std::hash::Hash;

/// What a protocol's machine can say of its transactions: the node's, the master's and
/// the simulation's questions (object-safe, so a node asks its three machines alike).
pub trait Facts {
    /// Whether this node knows `tx` as this protocol's.
    fn knows(&self, tx: TxnId) -> bool;

    /// The outcome this node decided or learnt.
    fn decision(&self, tx: TxnId) -> Option<TxOutcome>;

    /// The state of `tx` here beyond its leg: a coordinator's, a learner's.
    fn state(&self, part: &Participant, tx: TxnId) -> Option<TxState>;

    /// Transactions this node waits on beyond its legs in doubt: coordinating (votes,
    /// acks), terminating, leading a ballot, recovering.
    fn waiting(&self) -> Vec<TxnId>;

    /// Whether this node, as `tx`'s coordinator, is done with it.
    fn finished(&self, tx: TxnId) -> bool;

    /// The nodes of `tx` as this node knows them (its acceptors included).
    fn members(&self, tx: TxnId) -> Vec<NodeId>;

    /// Transactions whose outcome this node knows.
    fn decided(&self) -> Vec<TxnId>;
}
/// One atomic-commit protocol at one node: its transactions in every role.
pub trait CommitProtocol: Facts + Clone + Debug + Default + Eq + Hash {
    /// Its messages.
    type Msg: Clone + Debug + Eq + Hash + Into<CommitMsg> + TryFrom<CommitMsg>;

    /// Which protocol this is.
    const PROTOCOL: Protocol;

    /// This node coordinates `spec`; `nodes` are every node of the system, by id.
    fn start(
        &mut self,
        part: &mut Participant,
        cx: &mut Ctx<Self::Msg>,
        spec: &TxSpec,
        nodes: &[NodeId],
    );

    /// A message of this protocol arrived from `from`.
    fn on_message(
        &mut self,
        part: &mut Participant,
        cx: &mut Ctx<Self::Msg>,
        from: NodeId,
        msg: Self::Msg,
    );

    /// A payment of a transaction this node's part runs by this protocol arrived.
    fn on_credit(
        &mut self,
        part: &mut Participant,
        cx: &mut Ctx<Self::Msg>,
        from: NodeId,
        tx: TxnId,
        amount: Amount,
    );

    /// Time is up for `tx` here; `reach` are the nodes this one can reach now (the
    /// failure detector termination and ballots rely on).
    fn on_timeout(
        &mut self,
        part: &mut Participant,
        cx: &mut Ctx<Self::Msg>,
        tx: TxnId,
        reason: AbortReason,
        reach: &[NodeId],
    );

    /// `peer`'s process is gone (live mode): what can no longer come from it.
    fn on_peer_gone(&mut self, part: &mut Participant, cx: &mut Ctx<Self::Msg>, peer: NodeId) {
        let _ = (part, cx, peer);
    }

    /// Replays one record of the log (others' records are ignored).
    fn replay(&mut self, part: &mut Participant, rec: &Record);

    /// The log is replayed: what a restarted node must do now.
    fn recovered(&mut self, part: &mut Participant, cx: &mut Ctx<Self::Msg>);
}

/// Runs one step of protocol `P` at node `part.id()`: `f`, then every message the node
/// sent itself (its own part's vote or ack), in order.
pub fn run_step<P: CommitProtocol>(
    proto: &mut P,
    part: &mut Participant,
    relay: bool,
    effects: &mut Vec<Effect>,
    f: impl FnOnce(&mut P, &mut Participant, &mut Ctx<P::Msg>),
) {
    let me = part.id();
    let mut cx = Ctx::new(Out::new(me, relay, effects));
    f(proto, part, &mut cx);
    while let Some(m) = cx.next_local() {
        proto.on_message(part, &mut cx, me, m);
    }
}

/// A commit message for protocol `P` (or a payment of one of its transactions) arrived.
pub fn deliver<P: CommitProtocol>(
    proto: &mut P,
    part: &mut Participant,
    relay: bool,
    effects: &mut Vec<Effect>,
    from: NodeId,
    msg: CommitMsg,
) {
    match msg {
        CommitMsg::Credit { tx, amount } => run_step(proto, part, relay, effects, |p, part, cx| {
            p.on_credit(part, cx, from, tx, amount)
        }),
        other => {
            if let Ok(m) = P::Msg::try_from(other) {
                run_step(proto, part, relay, effects, |p, part, cx| p.on_message(part, cx, from, m))
            }
        }
    }
}

/// The state of `tx` at a node: its leg's if it is a participant (a pre-commit or a
/// learnt outcome the protocol knows first), else the protocol's.
pub fn state_at(proto: &dyn Facts, part: &Participant, tx: TxnId) -> Option<TxState> {
    let leg = part.tx_state(tx);
    match (leg, proto.state(part, tx)) {
        (Some(l), _) if l.is_final() => Some(l),
        (Some(_), Some(TxState::PreCommitted)) => Some(TxState::PreCommitted),
        (Some(l), _) => Some(l),
        (None, s) => s,
    }
}

/// One node running one protocol: its participant and its machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Machine<P> {
    /// The node's account and legs.
    pub part: Participant,
    /// The protocol's state.
    pub proto: P,
    /// Live mode's relaying.
    pub relay: bool,
}

impl<P: CommitProtocol> Machine<P> {
    /// A new node with `balance`; the caller logs [`Record::Opened`].
    pub fn new(id: NodeId, balance: Amount) -> Machine<P> {
        Machine { part: Participant::new(id, balance), proto: P::default(), relay: false }
    }

    /// This node coordinates `spec` among `nodes`.
    pub fn start(&mut self, spec: &TxSpec, nodes: &[NodeId], out: &mut Vec<Effect>) {
        run_step(&mut self.proto, &mut self.part, self.relay, out, |p, part, cx| {
            p.start(part, cx, spec, nodes)
        })
    }

    /// A message arrived from `from`.
    pub fn on_message(&mut self, from: NodeId, msg: CommitMsg, out: &mut Vec<Effect>) {
        deliver(&mut self.proto, &mut self.part, self.relay, out, from, msg)
    }

    /// Time is up for `tx` here.
    pub fn on_timeout(
        &mut self,
        tx: TxnId,
        reason: AbortReason,
        reach: &[NodeId],
        out: &mut Vec<Effect>,
    ) {
        run_step(&mut self.proto, &mut self.part, self.relay, out, |p, part, cx| {
            p.on_timeout(part, cx, tx, reason, reach)
        })
    }

    /// A node rebuilt from its log alone; `out` gets what it must do now.
    ///
    /// # Panics
    /// If the log does not start with [`Record::Opened`].
    pub fn recover(id: NodeId, records: &[Record], out: &mut Vec<Effect>) -> Machine<P> {
        let Some(Record::Opened { balance }) = records.first() else {
            panic!("node {id}: a log starts with Opened")
        };
        let mut m = Machine::<P>::new(id, *balance);
        for rec in &records[1..] {
            m.proto.replay(&mut m.part, rec);
            m.part.replay(rec);
        }
        run_step(&mut m.proto, &mut m.part, false, out, |p, part, cx| p.recovered(part, cx));
        m
    }

    /// The state of `tx` here.
    pub fn state(&self, tx: TxnId) -> TxState {
        state_at(&self.proto, &self.part, tx).unwrap_or(TxState::None)
    }

    /// Transactions this node waits on.
    pub fn waiting(&self) -> Vec<TxnId> {
        let mut v = self.part.in_doubt();
        v.extend(self.proto.waiting());
        v.sort();
        v.dedup();
        v
    }

    /// Every transaction that ended here, with how.
    pub fn ended(&self) -> Vec<(TxnId, TxState)> {
        let mut v: Vec<(TxnId, TxState)> = self.part.ended().collect();
        for tx in self.proto.decided() {
            let st = self.state(tx);
            if st.is_final() {
                v.push((tx, st));
            }
        }
        v.sort();
        v.dedup();
        v
    }
}
