//! Two-phase commit of one transfer between two branches, at one node, as a pure machine.
//!
//! The protocol (Gray, "Notes on Data Base Operating Systems", 1978; presumed abort after
//! Mohan, Lindsay and Obermarck, "Transaction Management in the R* Distributed Database
//! Management System", TODS 1986), for `from` → `to` of `amount`, coordinated by `coord`:
//!
//! 1. The coordinator sends `Prepare` to both participants. Reservations are amounts, not
//!    locks (escrow, O'Neil, "The Escrow Transactional Method", TODS 1986): the debit
//!    participant votes YES only if `amount` is available (its balance minus what its
//!    other unfinished transactions hold), and then holds it; the credit participant
//!    always votes YES. So any number of transactions run at one account at once, money
//!    is never promised twice, nothing waits for a lock (no deadlock), and only money
//!    decides a NO. A YES is preceded by a forced `Prepared` record.
//! 2. With both YES, the coordinator forces `Decision{commit}` and sends `Decide` to the
//!    participants; with a NO (or a timeout while voting) it decides abort, logged lazily
//!    (presumed abort: no record means abort).
//! 3. The debit participant, on commit, forces `Committed` (the debit), and in the same
//!    step sends `Credit{amount}`, the only message that carries the money, to the credit
//!    participant; that one forces `Committed` (the credit) and acks the coordinator.
//!    Credits are idempotent by transaction id, so a resent or duplicated `Credit` is
//!    applied once.
//!
//! Invariants: a YES is never taken back (a participant that voted YES never decides
//! alone: in doubt, it asks the coordinator with `DecisionReq`); a logged decision never
//! changes; money is in exactly one place at a time (the debit balance, one `Credit` in
//! flight, or the credit balance), so a snapshot counts it once.
//!
//! When the coordinator is a participant too (the default: the debit node coordinates),
//! its own leg is not logged before the decision: a crash before `Decision` aborts, and
//! the forced `Decision` record doubles as the debit, so a committed two-node transfer
//! costs three sequential forced writes (credit side's `Prepared`, the `Decision`, the
//! credit side's `Committed`).
//!
//! Crash points are effects ([`TxEffect::Point`]): a driver with a `CrashAt` armed stops
//! dead when it reaches one, and recovery ([`TxNode::recover`]) rebuilds the machine from
//! its log alone. No I/O here; `tests/two_pc_sim.rs` drives it with crashes, lost and
//! duplicated messages.

use crate::ids::{Amount, NodeId, TxnId};
pub use crate::wire::{AbortReason, TxMsg, TxOutcome as Outcome, TxSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A write-ahead-log record of this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxRecord {
    /// The node was created with this balance.
    Opened {
        /// The opening balance.
        balance: Amount,
    },
    /// A participant voted YES (forced before the vote).
    Prepared {
        /// The transfer.
        spec: TxSpec,
    },
    /// The coordinator decided (forced when commit; lazy when abort). When the coordinator
    /// is the debit node, a commit decision is also the debit.
    Decision {
        /// The transfer.
        spec: TxSpec,
        /// Commit or abort.
        commit: bool,
    },
    /// A participant applied a commit (forced): the debit, or the credit.
    Committed {
        /// The transfer.
        spec: TxSpec,
    },
    /// A participant released its hold after an abort (lazy).
    Aborted {
        /// The transaction.
        tx: TxnId,
    },
    /// The coordinator heard every ack (lazy).
    End {
        /// The transaction.
        tx: TxnId,
    },
    /// A plain `Send` debited this much (written before the Transfer leaves). The
    /// Transfers to each peer are numbered in the order of these records.
    Sent {
        /// The receiver.
        to: NodeId,
        /// How much.
        amount: Amount,
    },
    /// A plain Transfer credited this much (written before the step's answer leaves).
    Deposited {
        /// The sender.
        from: NodeId,
        /// How much.
        amount: Amount,
    },
}

/// The places a node can be told to die at (`CrashAt`, SPEC chapter 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CrashPoint {
    /// A participant got `Prepare` and has logged nothing.
    BeforeVote,
    /// A participant has logged and sent YES.
    AfterVote,
    /// The coordinator has every vote and has logged no decision.
    BeforeDecision,
    /// The coordinator has logged COMMIT and sent nothing.
    AfterDecision,
    /// The coordinator has sent the decision to one participant only.
    MidCommit,
    /// A participant has applied the commit and not acked it.
    BeforeAck,
}

impl CrashPoint {
    /// Every point, in protocol order.
    pub const ALL: [CrashPoint; 6] = [
        CrashPoint::BeforeVote,
        CrashPoint::AfterVote,
        CrashPoint::BeforeDecision,
        CrashPoint::AfterDecision,
        CrashPoint::MidCommit,
        CrashPoint::BeforeAck,
    ];

    /// The name a command file uses.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::BeforeVote => "before-vote",
            CrashPoint::AfterVote => "after-vote",
            CrashPoint::BeforeDecision => "before-decision",
            CrashPoint::AfterDecision => "after-decision",
            CrashPoint::MidCommit => "mid-commit",
            CrashPoint::BeforeAck => "before-ack",
        }
    }
}

/// What the machine needs done, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEffect {
    /// Append a record; when `force`, make it durable before any later effect.
    Log {
        /// The record.
        rec: TxRecord,
        /// Whether the record must be durable before the next effect.
        force: bool,
    },
    /// Send a message on the FIFO channel to `to`.
    Send {
        /// The destination.
        to: NodeId,
        /// The message.
        msg: TxMsg,
    },
    /// A crash point has been reached.
    Point(CrashPoint),
    /// The coordinator decided (for the master's `Transfer` line).
    Decided {
        /// The transaction.
        tx: TxnId,
        /// The decision.
        outcome: Outcome,
    },
}

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

/// The two-phase-commit state of one node: its money and the transactions it is in.
#[derive(Debug, Clone)]
pub struct TxNode {
    id: NodeId,
    /// All money the node owns, held money included.
    balance: Amount,
    /// Money reserved by prepared debits.
    held: Amount,
    parts: BTreeMap<TxnId, (TxSpec, PartState)>,
    /// The transactions of `parts` that are `Prepared`: this node's reservations (as a
    /// debit side, each holds its amount; as a credit side, it holds nothing).
    prepared: BTreeSet<TxnId>,
    /// Live mode: a crash may lose any message, so a credit side that knows the commit
    /// and lacks the money tells the debit side the decision, and a debit side told the
    /// decision again sends the money again (scripts recover lost messages otherwise).
    relay: bool,
    coords: BTreeMap<TxnId, (TxSpec, CoordState)>,
}

impl TxNode {
    /// A new node; the caller logs [`TxRecord::Opened`] first.
    pub fn new(id: NodeId, balance: Amount) -> TxNode {
        TxNode {
            id,
            balance,
            held: Amount::ZERO,
            parts: BTreeMap::new(),
            prepared: BTreeSet::new(),
            relay: false,
            coords: BTreeMap::new(),
        }
    }

    /// Live mode's relaying of decisions and money (see the field `relay`).
    pub fn set_relay(&mut self, on: bool) {
        self.relay = on;
    }

    fn set_part(&mut self, tx: TxnId, part: (TxSpec, PartState)) {
        if matches!(part.1, PartState::Prepared { .. }) {
            self.prepared.insert(tx);
        } else {
            self.prepared.remove(&tx);
        }
        self.parts.insert(tx, part);
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// All money the node owns, held money included.
    pub fn balance(&self) -> Amount {
        self.balance
    }

    /// Money reserved by prepared debits.
    pub fn held(&self) -> Amount {
        self.held
    }

    /// The participant state of `tx` here, if any.
    pub fn part(&self, tx: TxnId) -> Option<PartState> {
        self.parts.get(&tx).map(|p| p.1)
    }

    /// The coordinator state of `tx` here, if any.
    pub fn coord(&self, tx: TxnId) -> Option<&CoordState> {
        self.coords.get(&tx).map(|c| &c.1)
    }

    /// Transactions this node is waiting on: in doubt as a participant, or voting or
    /// missing acks as the coordinator.
    pub fn waiting(&self) -> Vec<TxnId> {
        let mut v = self.in_doubt();
        v.extend(
            self.coords
                .iter()
                .filter(|(_, (_, st))| {
                    matches!(st, CoordState::Voting(_) | CoordState::Committed(_))
                })
                .map(|(tx, _)| *tx),
        );
        v.sort();
        v.dedup();
        v
    }

    /// Transactions this node waits on (see [`TxNode::waiting`]) in which `peer` takes
    /// part: after `peer` restarts, what they need must be sent again.
    pub fn waiting_with(&self, peer: NodeId) -> Vec<TxnId> {
        let spec = |tx: &TxnId| {
            self.coords.get(tx).map(|c| c.0).or_else(|| self.parts.get(tx).map(|p| p.0))
        };
        self.waiting()
            .into_iter()
            .filter(|tx| {
                spec(tx).is_some_and(|s| s.coord == peer || s.participants().contains(&peer))
            })
            .collect()
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

    /// Whether this node, as `tx`'s coordinator, is done with it: aborted, or committed and
    /// acked by every participant.
    pub fn finished(&self, tx: TxnId) -> bool {
        matches!(self.coord(tx), Some(CoordState::Aborted(_) | CoordState::Ended))
    }

    /// The decision this node took on `tx` as its coordinator, if any.
    pub fn decision(&self, tx: TxnId) -> Option<Outcome> {
        match self.coord(tx)? {
            CoordState::Voting(_) => None,
            CoordState::Committed(_) | CoordState::Ended => Some(Outcome::Committed),
            CoordState::Aborted(r) => Some(Outcome::Aborted(*r)),
        }
    }

    /// Transactions this node voted YES on and has no decision for.
    pub fn in_doubt(&self) -> Vec<TxnId> {
        self.prepared.iter().copied().collect()
    }

    /// The state of `tx` at this node, as `TxStatus` prints it: its participant state if it
    /// is a participant, else its coordinator state; `NONE` if it never heard of `tx` (or
    /// voted NO, which leaves nothing behind).
    pub fn status(&self, tx: TxnId) -> &'static str {
        match (self.part(tx), self.coord(tx)) {
            (Some(PartState::Prepared { .. }), _) => "PREPARED",
            (Some(PartState::Committed), _) => "COMMITTED",
            (Some(PartState::Aborted), _) => "ABORTED",
            (None, Some(CoordState::Voting(_))) => "VOTING",
            (None, Some(CoordState::Committed(_) | CoordState::Ended)) => "COMMITTED",
            (None, Some(CoordState::Aborted(_))) => "ABORTED",
            (None, None) => "NONE",
        }
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

    /// Whether this participant applied `tx`: debited it, or credited it.
    pub fn applied(&self, tx: TxnId) -> bool {
        matches!(self.part(tx), Some(PartState::Committed))
    }

    /// This node coordinates `spec` (a `Transfer` command). Its own leg, if it has one,
    /// votes at once: a NO aborts before anything is sent; a YES holds the money without
    /// a record (the Decision record will cover it). Then `Prepare` goes to the others.
    ///
    /// # Panics
    /// If this node is not `spec.coord`.
    pub fn on_start(&mut self, spec: TxSpec, out: &mut Vec<TxEffect>) {
        assert_eq!(spec.coord, self.id, "only the coordinator starts a transaction");
        let mut yes = BTreeSet::new();
        if spec.participants().contains(&self.id) {
            if let Some(reason) = self.vote_on(spec) {
                let rec = TxRecord::Decision { spec, commit: false };
                out.push(TxEffect::Log { rec, force: false });
                self.coords.insert(spec.tx, (spec, CoordState::Aborted(reason)));
                out.push(TxEffect::Decided { tx: spec.tx, outcome: Outcome::Aborted(reason) });
                return;
            }
            self.take_prepared(spec);
            yes.insert(self.id);
        }
        self.coords.insert(spec.tx, (spec, CoordState::Voting(yes)));
        for p in spec.participants() {
            if p != self.id {
                out.push(TxEffect::Send { to: p, msg: TxMsg::Prepare { spec } });
            }
        }
    }

    /// This node's vote on `spec`: `None` for YES. Only money decides a NO (escrow): the
    /// debit side's money not held by its other unfinished transactions.
    fn vote_on(&self, spec: TxSpec) -> Option<AbortReason> {
        if spec.from == self.id && spec.amount > self.available() {
            Some(AbortReason::InsufficientFunds)
        } else {
            None
        }
    }

    /// A message arrived from `from`.
    pub fn on_message(&mut self, from: NodeId, msg: TxMsg, out: &mut Vec<TxEffect>) {
        let mut queue = VecDeque::new();
        self.handle(from, msg, out, &mut queue);
        self.run_local(out, queue);
    }

    /// Time is up for `tx` here (in a script: nothing is deliverable and the other side is
    /// down). A coordinator still voting aborts with `reason`; a coordinator whose commit
    /// lacks acks sends the decision again; a participant in doubt asks again. A
    /// participant that voted YES never decides alone.
    pub fn on_timeout(&mut self, tx: TxnId, reason: AbortReason, out: &mut Vec<TxEffect>) {
        let mut queue = VecDeque::new();
        match self.coords.get(&tx).cloned() {
            Some((spec, CoordState::Voting(_))) => {
                self.decide_abort(spec, reason, None, out, &mut queue)
            }
            Some((spec, CoordState::Committed(acks))) => {
                Self::resend_commit(self.id, spec, &acks, out);
            }
            _ => {}
        }
        match self.parts.get(&tx).copied() {
            // Relaying: the credit side knows the commit and waits for the money, which a
            // crash may have lost; the decision, told to the debit side, has it sent again.
            Some((spec, PartState::Prepared { commit_known: true }))
                if self.relay && spec.from != self.id =>
            {
                let msg = TxMsg::Decide { tx, commit: true };
                self.send(spec.from, msg, out, &mut queue);
            }
            Some((spec, PartState::Prepared { .. })) if spec.coord != self.id => {
                out.push(TxEffect::Send { to: spec.coord, msg: TxMsg::DecisionReq { tx } });
            }
            _ => {}
        }
        self.run_local(out, queue);
    }

    /// Coordinator `id` finishing commit `spec`: the decision again to every other
    /// participant that has not acked, as the money itself to the credit side when `id` is
    /// the debit side (a `Credit` is idempotent there).
    fn resend_commit(id: NodeId, spec: TxSpec, acks: &BTreeSet<NodeId>, out: &mut Vec<TxEffect>) {
        for p in spec.participants() {
            if p == id || acks.contains(&p) {
                continue;
            }
            let msg = if p == spec.to && spec.from == id {
                spec.credit()
            } else {
                TxMsg::Decide { tx: spec.tx, commit: true }
            };
            out.push(TxEffect::Send { to: p, msg });
        }
    }

    /// Messages from this node to itself (its own legs) are handled at once, in order.
    fn run_local(&mut self, out: &mut Vec<TxEffect>, mut queue: VecDeque<TxMsg>) {
        while let Some(msg) = queue.pop_front() {
            self.handle(self.id, msg, out, &mut queue);
        }
    }

    fn send(&self, to: NodeId, msg: TxMsg, out: &mut Vec<TxEffect>, local: &mut VecDeque<TxMsg>) {
        if to == self.id {
            local.push_back(msg);
        } else {
            out.push(TxEffect::Send { to, msg });
        }
    }

    fn handle(
        &mut self,
        from: NodeId,
        msg: TxMsg,
        out: &mut Vec<TxEffect>,
        q: &mut VecDeque<TxMsg>,
    ) {
        match msg {
            TxMsg::Prepare { spec } => self.on_prepare(spec, out, q),
            TxMsg::Vote { tx, no } => self.on_vote(from, tx, no, out, q),
            TxMsg::Decide { tx, commit } => self.on_decide(tx, commit, out, q),
            TxMsg::Credit { tx, amount } => self.on_credit(tx, amount, out, q),
            TxMsg::Ack { tx } => self.on_ack(from, tx, out),
            TxMsg::DecisionReq { tx } => self.on_decision_req(from, tx, out, q),
        }
    }

    /// Participant, step 1 (a remote coordinator asks).
    fn on_prepare(&mut self, spec: TxSpec, out: &mut Vec<TxEffect>, q: &mut VecDeque<TxMsg>) {
        let tx = spec.tx;
        if let Some(&(_, st)) = self.parts.get(&tx) {
            // A duplicated Prepare: repeat the vote already given (an aborted one is
            // decided, so the coordinator ignores it; the reason is never shown).
            let no = matches!(st, PartState::Aborted).then_some(AbortReason::Timeout);
            self.send(spec.coord, TxMsg::Vote { tx, no }, out, q);
            return;
        }
        out.push(TxEffect::Point(CrashPoint::BeforeVote));
        let no = self.vote_on(spec);
        if no.is_none() {
            out.push(TxEffect::Log { rec: TxRecord::Prepared { spec }, force: true });
            self.take_prepared(spec);
        }
        self.send(spec.coord, TxMsg::Vote { tx, no }, out, q);
        if no.is_none() {
            out.push(TxEffect::Point(CrashPoint::AfterVote));
        }
    }

    fn take_prepared(&mut self, spec: TxSpec) {
        if spec.from == self.id {
            self.held = self.held.checked_add(spec.amount).expect("held is at most the balance");
        }
        self.set_part(spec.tx, (spec, PartState::Prepared { commit_known: false }));
    }

    /// Coordinator, step 2.
    fn on_vote(
        &mut self,
        from: NodeId,
        tx: TxnId,
        no: Option<AbortReason>,
        out: &mut Vec<TxEffect>,
        q: &mut VecDeque<TxMsg>,
    ) {
        // A late vote after the decision changes nothing.
        let Some((spec, CoordState::Voting(yes))) = self.coords.get_mut(&tx) else { return };
        let spec = *spec;
        if let Some(reason) = no {
            self.decide_abort(spec, reason, Some(from), out, q);
            return;
        }
        yes.insert(from);
        if !spec.participants().iter().all(|p| yes.contains(p)) {
            return;
        }
        out.push(TxEffect::Point(CrashPoint::BeforeDecision));
        out.push(TxEffect::Log { rec: TxRecord::Decision { spec, commit: true }, force: true });
        self.coords.insert(tx, (spec, CoordState::Committed(BTreeSet::new())));
        out.push(TxEffect::Point(CrashPoint::AfterDecision));
        out.push(TxEffect::Decided { tx, outcome: Outcome::Committed });
        // When this node is the debit side, its Credit tells the credit side the decision.
        let remote: Vec<NodeId> = spec
            .participants()
            .into_iter()
            .filter(|&p| p != self.id && !(p == spec.to && spec.from == self.id))
            .collect();
        for (i, &p) in remote.iter().enumerate() {
            if i > 0 {
                out.push(TxEffect::Point(CrashPoint::MidCommit));
            }
            out.push(TxEffect::Send { to: p, msg: TxMsg::Decide { tx, commit: true } });
        }
        if spec.participants().contains(&self.id) {
            // The Decision record is this node's own commit.
            self.apply_commit_locally(spec, out, q);
        }
    }

    /// Aborts `spec` and tells its participants, except `voted_no`: the participant whose
    /// NO decided it already aborted and holds nothing (so the last message of a transfer
    /// aborted by a NO is that vote).
    fn decide_abort(
        &mut self,
        spec: TxSpec,
        reason: AbortReason,
        voted_no: Option<NodeId>,
        out: &mut Vec<TxEffect>,
        q: &mut VecDeque<TxMsg>,
    ) {
        let tx = spec.tx;
        out.push(TxEffect::Log { rec: TxRecord::Decision { spec, commit: false }, force: false });
        self.coords.insert(tx, (spec, CoordState::Aborted(reason)));
        out.push(TxEffect::Decided { tx, outcome: Outcome::Aborted(reason) });
        for p in spec.participants().into_iter().filter(|&p| Some(p) != voted_no) {
            self.send(p, TxMsg::Decide { tx, commit: false }, out, q);
        }
    }

    /// The coordinator's own leg commits with its Decision record (no record of its own).
    fn apply_commit_locally(
        &mut self,
        spec: TxSpec,
        out: &mut Vec<TxEffect>,
        q: &mut VecDeque<TxMsg>,
    ) {
        if spec.from == self.id {
            self.debit(spec);
            out.push(TxEffect::Send { to: spec.to, msg: spec.credit() });
            self.send(spec.coord, TxMsg::Ack { tx: spec.tx }, out, q);
        } else {
            self.set_part(spec.tx, (spec, PartState::Prepared { commit_known: true }));
        }
    }

    fn debit(&mut self, spec: TxSpec) {
        self.held = self.held.checked_sub(spec.amount).expect("the debit was held");
        self.balance = self.balance.checked_sub(spec.amount).expect("held money is owned");
        self.set_part(spec.tx, (spec, PartState::Committed));
    }

    /// Participant, step 3 (and the answer to an inquiry).
    fn on_decide(
        &mut self,
        tx: TxnId,
        commit: bool,
        out: &mut Vec<TxEffect>,
        q: &mut VecDeque<TxMsg>,
    ) {
        let Some(&(spec, st)) = self.parts.get(&tx) else { return };
        if spec.coord == self.id && commit {
            return; // its own commit was applied with the Decision record
        }
        match (st, commit) {
            (PartState::Prepared { .. }, true) if spec.from == self.id => {
                out.push(TxEffect::Log { rec: TxRecord::Committed { spec }, force: true });
                self.debit(spec);
                out.push(TxEffect::Send { to: spec.to, msg: spec.credit() });
                out.push(TxEffect::Point(CrashPoint::BeforeAck));
                self.send(spec.coord, TxMsg::Ack { tx }, out, q);
            }
            (PartState::Prepared { .. }, true) => {
                // The credit side waits for the money itself.
                self.set_part(tx, (spec, PartState::Prepared { commit_known: true }));
            }
            (PartState::Prepared { .. }, false) => {
                if spec.coord != self.id {
                    out.push(TxEffect::Log { rec: TxRecord::Aborted { tx }, force: false });
                }
                self.release(spec);
            }
            (PartState::Committed, true) => {
                if self.relay && spec.from == self.id && spec.to != self.id {
                    // Told again: the money may not have arrived (a crash lost it).
                    out.push(TxEffect::Send { to: spec.to, msg: spec.credit() });
                }
                self.send(spec.coord, TxMsg::Ack { tx }, out, q)
            }
            (PartState::Committed, false) => {
                // Committed here, and the coordinator says abort: a bug elsewhere. A
                // peer's message never makes this node panic; the tests' builds stop.
                debug_assert!(false, "node {}: {tx} committed here; told abort", self.id);
            }
            (PartState::Aborted, _) => {}
        }
    }

    fn release(&mut self, spec: TxSpec) {
        if spec.from == self.id {
            self.held = self.held.checked_sub(spec.amount).expect("the debit was held");
        }
        self.set_part(spec.tx, (spec, PartState::Aborted));
    }

    /// Credit participant: the money arrives. Applied once per transaction.
    fn on_credit(
        &mut self,
        tx: TxnId,
        amount: Amount,
        out: &mut Vec<TxEffect>,
        q: &mut VecDeque<TxMsg>,
    ) {
        // Money for a transaction this node never prepared, of another amount, or for one
        // it aborted cannot exist (the debit side pays only after a commit, which needs
        // this node's YES): a bug elsewhere, ignored rather than a panic on a peer's
        // message; the tests' builds stop on it.
        let Some(&(spec, st)) = self.parts.get(&tx) else {
            debug_assert!(false, "node {}: a credit for unknown {tx}", self.id);
            return;
        };
        if spec.amount != amount || st == PartState::Aborted {
            debug_assert!(false, "node {}: a credit of {amount} for {tx} ({st:?})", self.id);
            return;
        }
        if st == PartState::Committed {
            self.send(spec.coord, TxMsg::Ack { tx }, out, q); // a duplicate: re-ack only
            return;
        }
        out.push(TxEffect::Log { rec: TxRecord::Committed { spec }, force: true });
        self.balance = self.balance.checked_add(amount).expect("total money is bounded");
        self.set_part(tx, (spec, PartState::Committed));
        out.push(TxEffect::Point(CrashPoint::BeforeAck));
        self.send(spec.coord, TxMsg::Ack { tx }, out, q);
    }

    /// Coordinator: a participant has applied the commit.
    fn on_ack(&mut self, from: NodeId, tx: TxnId, out: &mut Vec<TxEffect>) {
        let Some((spec, CoordState::Committed(acks))) = self.coords.get_mut(&tx) else { return };
        acks.insert(from);
        if spec.participants().iter().all(|p| acks.contains(p)) {
            let spec = *spec;
            out.push(TxEffect::Log { rec: TxRecord::End { tx }, force: false });
            self.coords.insert(tx, (spec, CoordState::Ended));
        }
    }

    /// Coordinator: a participant in doubt asks. Unknown means abort (presumed abort); a
    /// transaction still voting is aborted first, so it can never commit after this answer.
    fn on_decision_req(
        &mut self,
        from: NodeId,
        tx: TxnId,
        out: &mut Vec<TxEffect>,
        q: &mut VecDeque<TxMsg>,
    ) {
        let commit = match self.coords.get(&tx).cloned() {
            Some((_, CoordState::Committed(_) | CoordState::Ended)) => true,
            Some((spec, CoordState::Voting(_))) => {
                self.decide_abort(spec, AbortReason::Timeout, None, out, q);
                return;
            }
            Some((_, CoordState::Aborted(_))) => false,
            None => {
                // Presumed abort: no record means this coordinator never decided commit
                // (it may have crashed first). Say so, once, for whoever started it.
                let spec = TxSpec { tx, from, to: from, amount: Amount::ZERO, coord: self.id };
                self.coords.insert(tx, (spec, CoordState::Aborted(AbortReason::NodeDown)));
                out.push(TxEffect::Decided {
                    tx,
                    outcome: Outcome::Aborted(AbortReason::NodeDown),
                });
                false
            }
        };
        self.send(from, TxMsg::Decide { tx, commit }, out, q);
    }

    /// Rebuilds a node from its log alone, and says what it must do now: ask about every
    /// transaction in doubt, and finish every commit it decided and not ended (resending the
    /// decision, and the money when it is the debit side; both are idempotent).
    ///
    /// # Panics
    /// If the log does not start with [`TxRecord::Opened`].
    pub fn recover(id: NodeId, records: &[TxRecord], out: &mut Vec<TxEffect>) -> TxNode {
        let Some(TxRecord::Opened { balance }) = records.first() else {
            panic!("node {id}: a log starts with Opened")
        };
        let mut n = TxNode::new(id, *balance);
        for rec in &records[1..] {
            match *rec {
                TxRecord::Opened { .. } => panic!("node {id}: Opened twice"),
                TxRecord::Prepared { spec } => n.take_prepared(spec),
                TxRecord::Decision { spec, commit: true } => {
                    n.coords.insert(spec.tx, (spec, CoordState::Committed(BTreeSet::new())));
                    if spec.from == id {
                        // No Prepared record for the coordinator's own leg: hold, then debit.
                        n.take_prepared(spec);
                        n.debit(spec);
                    } else if spec.to == id {
                        n.set_part(spec.tx, (spec, PartState::Prepared { commit_known: true }));
                    }
                }
                TxRecord::Decision { spec, commit: false } => {
                    n.coords.insert(spec.tx, (spec, CoordState::Aborted(AbortReason::Timeout)));
                    if n.parts
                        .get(&spec.tx)
                        .is_some_and(|p| matches!(p.1, PartState::Prepared { .. }))
                    {
                        n.release(spec);
                    }
                }
                TxRecord::Committed { spec } => {
                    if spec.from == id {
                        n.debit(spec);
                    } else {
                        n.balance = n.balance.checked_add(spec.amount).expect("bounded");
                        n.set_part(spec.tx, (spec, PartState::Committed));
                    }
                }
                TxRecord::Aborted { tx } => {
                    if let Some(&(spec, PartState::Prepared { .. })) = n.parts.get(&tx) {
                        n.release(spec);
                    }
                }
                TxRecord::End { tx } => {
                    if let Some(c) = n.coords.get_mut(&tx) {
                        c.1 = CoordState::Ended;
                    }
                }
                TxRecord::Sent { amount, .. } => {
                    n.balance = n.balance.checked_sub(amount).expect("a logged send was covered")
                }
                TxRecord::Deposited { amount, .. } => n.deposit(amount),
            }
        }
        for (&tx, &(spec, st)) in &n.parts {
            if matches!(st, PartState::Prepared { .. }) && spec.coord != id {
                out.push(TxEffect::Send { to: spec.coord, msg: TxMsg::DecisionReq { tx } });
            }
        }
        for (&tx, (spec, st)) in &n.coords {
            if !matches!(st, CoordState::Committed(_)) {
                continue;
            }
            // Whoever started the transfer may not have heard the decision.
            out.push(TxEffect::Decided { tx, outcome: Outcome::Committed });
            Self::resend_commit(id, *spec, &BTreeSet::new(), out);
        }
        // The coordinator's own leg, once applied, acks itself (acks are not logged).
        let own: Vec<TxnId> = n
            .coords
            .iter()
            .filter(|(tx, (_, st))| matches!(st, CoordState::Committed(_)) && n.applied(**tx))
            .map(|(tx, _)| *tx)
            .collect();
        for tx in own {
            n.on_ack(id, tx, out);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> NodeId {
        NodeId(i)
    }
    fn spec(from: u32, to: u32, amount: u64, coord: u32) -> TxSpec {
        TxSpec { tx: TxnId(1), from: n(from), to: n(to), amount: Amount(amount), coord: n(coord) }
    }
    fn sends(out: &[TxEffect]) -> Vec<(NodeId, TxMsg)> {
        out.iter()
            .filter_map(
                |e| if let TxEffect::Send { to, msg } = e { Some((*to, *msg)) } else { None },
            )
            .collect()
    }
    fn forced(out: &[TxEffect]) -> Vec<TxRecord> {
        out.iter()
            .filter_map(
                |e| if let TxEffect::Log { rec, force: true } = e { Some(*rec) } else { None },
            )
            .collect()
    }

    // The happy path, debit node coordinating: three forced writes, one money message.
    #[test]
    fn a_two_node_transfer_commits_with_three_forced_writes() {
        let s = spec(1, 2, 30, 1);
        let (mut a, mut b) = (TxNode::new(n(1), Amount(100)), TxNode::new(n(2), Amount(5)));
        let mut out = Vec::new();
        a.on_start(s, &mut out);
        assert_eq!(sends(&out), vec![(n(2), TxMsg::Prepare { spec: s })]);
        assert!(forced(&out).is_empty(), "the coordinator's own leg is not logged yet");
        assert_eq!(a.held(), Amount(30));
        let mut out_b = Vec::new();
        b.on_message(n(1), TxMsg::Prepare { spec: s }, &mut out_b);
        assert_eq!(forced(&out_b), vec![TxRecord::Prepared { spec: s }]);
        assert_eq!(sends(&out_b), vec![(n(1), TxMsg::Vote { tx: s.tx, no: None })]);
        out.clear();
        a.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
        assert_eq!(forced(&out), vec![TxRecord::Decision { spec: s, commit: true }]);
        assert!(out.contains(&TxEffect::Decided { tx: s.tx, outcome: Outcome::Committed }));
        assert_eq!((a.balance(), a.held()), (Amount(70), Amount(0)));
        let money: Vec<_> = sends(&out).into_iter().filter(|m| m.1.money().is_some()).collect();
        assert_eq!(money, vec![(n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) })]);
        out_b.clear();
        b.on_message(n(1), TxMsg::Decide { tx: s.tx, commit: true }, &mut out_b);
        b.on_message(n(1), TxMsg::Credit { tx: s.tx, amount: Amount(30) }, &mut out_b);
        assert_eq!(forced(&out_b), vec![TxRecord::Committed { spec: s }]);
        assert_eq!(b.balance(), Amount(35));
        out.clear();
        a.on_message(n(2), TxMsg::Ack { tx: s.tx }, &mut out);
        assert_eq!(a.coord(s.tx), Some(&CoordState::Ended));
    }

    // Funds decide a NO, before anything is sent; a credit side always votes YES, even
    // while it is in another unfinished transaction (escrow: no busy votes).
    #[test]
    fn short_funds_abort_and_a_credit_side_always_votes_yes() {
        let mut a = TxNode::new(n(1), Amount(10));
        let mut out = Vec::new();
        a.on_start(spec(1, 2, 11, 1), &mut out);
        assert!(out.contains(&TxEffect::Decided {
            tx: TxnId(1),
            outcome: Outcome::Aborted(AbortReason::InsufficientFunds)
        }));
        assert!(sends(&out).is_empty(), "a local NO aborts before any Prepare leaves");
        let mut b = TxNode::new(n(2), Amount(0));
        let mut out = Vec::new();
        b.on_message(n(3), TxMsg::Prepare { spec: spec(1, 2, 1, 3) }, &mut out);
        let s2 = TxSpec { tx: TxnId(2), ..spec(4, 2, 1, 3) };
        out.clear();
        b.on_message(n(3), TxMsg::Prepare { spec: s2 }, &mut out);
        assert_eq!(sends(&out), vec![(n(3), TxMsg::Vote { tx: TxnId(2), no: None })]);
        assert_eq!(b.in_doubt(), vec![TxnId(1), TxnId(2)]);
        assert_eq!(b.held(), Amount(0), "a credit side holds nothing");
    }

    // Escrow: several transactions hold reservations at once, each from what is still
    // available, so money is never promised twice; a decision frees its reservation;
    // two debits the balance covers together both commit.
    #[test]
    fn reservations_are_amounts_and_never_promise_money_twice() {
        let mut a = TxNode::new(n(1), Amount(100));
        let t = |tx, amount| TxSpec { tx: TxnId(tx), ..spec(1, 2, amount, 1) };
        let decided = |out: &[TxEffect]| {
            out.iter().find_map(|e| match e {
                TxEffect::Decided { outcome, .. } => Some(*outcome),
                _ => None,
            })
        };
        let mut out = Vec::new();
        a.on_start(t(1, 60), &mut out);
        assert_eq!(decided(&out), None);
        out.clear();
        a.on_start(t(2, 50), &mut out);
        assert_eq!(decided(&out), Some(Outcome::Aborted(AbortReason::InsufficientFunds)));
        out.clear();
        a.on_start(t(3, 40), &mut out);
        assert_eq!(decided(&out), None);
        assert_eq!((a.held(), a.available()), (Amount(100), Amount(0)));
        assert_eq!(a.in_doubt(), vec![TxnId(1), TxnId(3)]);
        out.clear();
        a.on_start(t(4, 0), &mut out);
        assert_eq!(decided(&out), None, "a zero amount is always covered");
        out.clear();
        a.on_message(n(2), TxMsg::Vote { tx: TxnId(1), no: None }, &mut out);
        assert_eq!(decided(&out), Some(Outcome::Committed));
        assert_eq!((a.balance(), a.held()), (Amount(40), Amount(40)));
        assert_eq!(a.in_doubt(), vec![TxnId(3), TxnId(4)], "the commit freed its reservation");
        assert_eq!(a.waiting_with(n(2)), vec![TxnId(1), TxnId(3), TxnId(4)]);
        assert!(a.waiting_with(n(5)).is_empty());
        out.clear();
        a.on_message(n(2), TxMsg::Vote { tx: TxnId(3), no: None }, &mut out);
        assert_eq!(decided(&out), Some(Outcome::Committed));
        assert_eq!((a.balance(), a.held()), (Amount(0), Amount(0)));
    }

    // The NO that decides an abort ends that voter's part: the coordinator sends the abort
    // only to the others (here: the debit side, which holds the money).
    #[test]
    fn the_participant_whose_no_aborts_gets_no_abort_message() {
        let s = spec(1, 2, 5, 3);
        let mut c = TxNode::new(n(3), Amount(0));
        let mut out = Vec::new();
        c.on_start(s, &mut out);
        out.clear();
        let no = Some(AbortReason::InsufficientFunds);
        c.on_message(n(2), TxMsg::Vote { tx: s.tx, no }, &mut out);
        assert_eq!(sends(&out), vec![(n(1), TxMsg::Decide { tx: s.tx, commit: false })]);
        assert!(c.finished(s.tx), "an aborted coordinator waits on nothing");
        // Debit side coordinating: the credit side's NO is the transfer's last message.
        let s = spec(1, 2, 5, 1);
        let mut a = TxNode::new(n(1), Amount(50));
        out.clear();
        a.on_start(s, &mut out);
        assert!(!a.finished(s.tx));
        out.clear();
        a.on_message(n(2), TxMsg::Vote { tx: s.tx, no }, &mut out);
        assert!(sends(&out).is_empty());
        assert_eq!((a.held(), a.finished(s.tx)), (Amount(0), true));
    }

    // A YES is never taken back: a timeout in doubt asks the coordinator, it does not abort.
    #[test]
    fn a_participant_in_doubt_asks_and_never_decides_alone() {
        let s = spec(1, 2, 5, 3);
        let mut b = TxNode::new(n(2), Amount(0));
        let mut out = Vec::new();
        b.on_message(n(3), TxMsg::Prepare { spec: s }, &mut out);
        out.clear();
        b.on_timeout(s.tx, AbortReason::Timeout, &mut out);
        assert_eq!(sends(&out), vec![(n(3), TxMsg::DecisionReq { tx: s.tx })]);
        assert_eq!(b.in_doubt(), vec![s.tx]);
    }

    // Presumed abort: a coordinator that has no record of a transaction answers abort, and
    // one still voting aborts before answering.
    #[test]
    fn inquiries_about_unknown_or_voting_transactions_get_abort() {
        let mut c = TxNode::new(n(3), Amount(0));
        let mut out = Vec::new();
        c.on_message(n(2), TxMsg::DecisionReq { tx: TxnId(9) }, &mut out);
        assert_eq!(sends(&out), vec![(n(2), TxMsg::Decide { tx: TxnId(9), commit: false })]);
        let s = spec(1, 2, 5, 3);
        out.clear();
        c.on_start(s, &mut out);
        c.on_message(n(2), TxMsg::DecisionReq { tx: s.tx }, &mut out);
        assert!(matches!(c.coord(s.tx), Some(CoordState::Aborted(_))));
        out.clear();
        c.on_message(n(1), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
        c.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
        assert!(forced(&out).is_empty(), "no commit after answering abort");
    }

    // Recovery: a coordinator that logged COMMIT and crashed finishes it from its log.
    #[test]
    fn a_coordinator_recovers_a_logged_commit_and_resends() {
        let s = spec(1, 2, 30, 1);
        let log = [
            TxRecord::Opened { balance: Amount(100) },
            TxRecord::Decision { spec: s, commit: true },
        ];
        let mut out = Vec::new();
        let a = TxNode::recover(n(1), &log, &mut out);
        assert_eq!((a.balance(), a.held()), (Amount(70), Amount(0)));
        assert!(sends(&out).contains(&(n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) })));
        assert!(matches!(a.coord(s.tx), Some(CoordState::Committed(_))));
    }

    // Idempotence: a duplicated credit is applied once and re-acked.
    #[test]
    fn a_duplicated_credit_is_applied_once() {
        let s = spec(1, 2, 7, 1);
        let mut b = TxNode::new(n(2), Amount(0));
        let mut out = Vec::new();
        b.on_message(n(1), TxMsg::Prepare { spec: s }, &mut out);
        b.on_message(n(1), TxMsg::Credit { tx: s.tx, amount: Amount(7) }, &mut out);
        out.clear();
        b.on_message(n(1), TxMsg::Credit { tx: s.tx, amount: Amount(7) }, &mut out);
        assert_eq!(b.balance(), Amount(7));
        assert_eq!(sends(&out), vec![(n(1), TxMsg::Ack { tx: s.tx })]);
        assert!(forced(&out).is_empty());
    }
}
