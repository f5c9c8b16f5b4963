//! One bank branch (a node): its money, its peers, its snapshots and its transactions.
//!
//! [`Branch`] is everything a node process knows, as a pure machine: the node driver
//! calls one `on_*` method per command or delivered message and carries out the effects
//! in order (raft-rs's `RawNode`). Money moves three ways: `on_send` debits and emits a
//! Transfer, delivering a Transfer credits it, and a committed transaction moves money
//! from its paying parts to its paid parts in `Credit` messages. The branch routes each
//! commit message to the protocol that owns it (`two_pc`, `three_pc`, `paxos_commit`,
//! all over one [`Participant`], which owns the balance, so money held by a transaction
//! cannot be sent) and answers the driver's and the master's questions about them.
//! Money is conserved as long as every money-carrying message is applied exactly once.

use super::commit::{deliver, run_step, state_at, CommitProtocol, Facts};
use super::effect::{Effect, Force};
use super::participant::Participant;
use super::paxos_commit::PaxosCommit;
use super::record::Record;
use super::snapshot::{Holdings, Snapshots};
use super::three_pc::ThreePc;
use super::two_pc::TwoPc;
use crate::ids::{AccountName, Amount, NodeId, SnapshotId, TxnId};
use crate::wire::{
    AbortReason, AccountState, ChannelMsg, CommitMsg, LocalReport, Money, Protocol, TxOutcome,
    TxSpec, TxState,
};

/// A Send refused because the balance is short. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrSend;

/// A node's whole protocol state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The account and every transaction's leg here.
    part: Participant,
    two: TwoPc,
    three: ThreePc,
    paxos: PaxosCommit,
    /// Live mode: a crash may lose any message (see `Out::relay`).
    relay: bool,
    /// Every other node, sorted by id: the node's outgoing (and incoming) channels.
    peers: Vec<NodeId>,
    snapshots: Snapshots,
}

/// Runs `$body` with `$m` the machine of protocol `$p` (a mutable borrow of that field
/// alone, so the body may borrow the branch's other fields).
macro_rules! with_machine {
    ($self:ident, $p:expr, |$m:ident| $body:expr) => {
        match $p {
            Protocol::TwoPc => {
                let $m = &mut $self.two;
                $body
            }
            Protocol::ThreePc => {
                let $m = &mut $self.three;
                $body
            }
            Protocol::Paxos => {
                let $m = &mut $self.paxos;
                $body
            }
        }
    };
}

impl Branch {
    /// A new branch with its opening balance and no peers.
    pub fn new(id: NodeId, balance: Amount) -> Self {
        Branch {
            part: Participant::new(id, balance),
            two: TwoPc::default(),
            three: ThreePc::default(),
            paxos: PaxosCommit::default(),
            relay: false,
            peers: Vec::new(),
            snapshots: Snapshots::new(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.part.id()
    }

    /// All money this node owns, held money included.
    pub fn balance(&self) -> Amount {
        self.part.accounts().total()
    }

    /// Money held by unfinished transactions.
    pub fn held(&self) -> Amount {
        self.part.accounts().held()
    }

    /// Money available to spend: the balance less what transactions hold.
    pub fn available(&self) -> Amount {
        self.part.accounts().own().available()
    }

    /// The node's money as the master's ledger follows it.
    pub fn money(&self) -> Money {
        Money { balance: self.balance(), held: self.held(), spare: self.available() }
    }

    /// Every named account here, by name, as `Balances` prints it.
    pub fn accounts(&self) -> Vec<AccountState> {
        let named = self.part.accounts().named();
        named
            .map(|(name, a)| AccountState {
                name: name.clone(),
                balance: a.balance(),
                held: a.held(),
            })
            .collect()
    }

    /// What a snapshot records here: all the money, and each named account's.
    fn holdings(&self) -> Holdings {
        let accounts = self.part.accounts().named().map(|(n, a)| (n.clone(), a.balance()));
        Holdings { balance: self.balance(), accounts: accounts.collect() }
    }

    /// `CreateAccount`: opens `name` here with `amount` of new money, forced to the log
    /// before the master is told. False (nothing changes) if the name exists here.
    pub fn on_open_account(
        &mut self,
        name: AccountName,
        amount: Amount,
        out: &mut Vec<Effect>,
    ) -> bool {
        if !self.part.open(name.clone(), amount) {
            return false;
        }
        out.push(Effect::Log { rec: Record::AccountOpened { name, amount }, force: Force::Now });
        true
    }

    /// Live mode (relaying on, see `Out::relay`) or scripted.
    pub fn set_live(&mut self, live: bool) {
        self.relay = live;
    }

    /// The peers, sorted by id.
    pub fn peers(&self) -> &[NodeId] {
        &self.peers
    }

    /// Every node of the system (this one and its peers), by id.
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut v = self.peers.clone();
        v.push(self.id());
        v.sort();
        v
    }

    /// The snapshot state.
    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// The node was created among `peers`, while the snapshots in `join` were running:
    /// it records its opening balance for each of them (sending their markers first).
    pub fn on_setup(&mut self, peers: &[NodeId], join: &[SnapshotId], out: &mut Vec<Effect>) {
        for &p in peers {
            self.insert_peer(p);
        }
        for &id in join {
            self.snapshots.record(id, self.holdings(), &self.peers, None, out);
        }
    }

    /// `peer` was created after this node and joined the snapshots in `join`.
    pub fn on_add_peer(&mut self, peer: NodeId, join: &[SnapshotId], out: &mut Vec<Effect>) {
        self.insert_peer(peer);
        self.snapshots.on_peer_added(peer, join, out);
    }

    fn insert_peer(&mut self, peer: NodeId) {
        assert_ne!(peer, self.id(), "a node is not its own peer");
        if let Err(at) = self.peers.binary_search(&peer) {
            self.peers.insert(at, peer);
        }
    }

    /// Debit `amount` and emit a Transfer to `to`, or refuse when the available balance
    /// (money not held by a transaction) is short.
    ///
    /// # Panics
    /// If `to` is not a peer: the master validates ids before sending a command.
    pub fn on_send(
        &mut self,
        to: NodeId,
        amount: Amount,
        out: &mut Vec<Effect>,
    ) -> Result<(), ErrSend> {
        assert!(self.peers.binary_search(&to).is_ok(), "node {} has no peer {to}", self.id());
        if !self.part.withdraw(amount) {
            return Err(ErrSend);
        }
        out.push(Effect::Log { rec: Record::Sent { to, amount }, force: Force::Lazy });
        out.push(Effect::Send { to, msg: ChannelMsg::Transfer { amount } });
        Ok(())
    }

    /// Apply a message taken from the channel `from` → this node. Returns the balance
    /// recorded when the message was a first marker.
    pub fn on_deliver(
        &mut self,
        from: NodeId,
        msg: ChannelMsg,
        out: &mut Vec<Effect>,
    ) -> Option<Amount> {
        match msg {
            ChannelMsg::Transfer { amount } => {
                let rec = Record::Deposited { from, amount };
                out.push(Effect::Log { rec, force: Force::Lazy });
                self.part.deposit(amount);
                self.snapshots.on_transfer(from, amount);
                None
            }
            ChannelMsg::Marker { snapshot } => {
                // Only a first marker records: only then is the node's money read.
                let first = self.snapshots.get(snapshot).is_none();
                let here = if first { self.holdings() } else { Holdings::default() };
                self.snapshots.on_marker(from, snapshot, move || here, &self.peers, out)
            }
            ChannelMsg::Commit(m) => {
                // A payment is money arriving: recorded in channel state like a Transfer,
                // but only the first time (a copy sent again changes nothing).
                let fresh = m.money().filter(|(tx, _)| self.part.fresh_payment(*tx, from));
                let protocol = match &m {
                    CommitMsg::TwoPc(_) => Protocol::TwoPc,
                    CommitMsg::ThreePc(_) => Protocol::ThreePc,
                    CommitMsg::Paxos(_) => Protocol::Paxos,
                    CommitMsg::Credit { tx, .. } => self.protocol(*tx).unwrap_or_default(),
                };
                let relay = self.relay;
                with_machine!(self, protocol, |m2| deliver(
                    m2,
                    &mut self.part,
                    relay,
                    out,
                    from,
                    m
                ));
                if let Some((_, amount)) = fresh {
                    self.snapshots.on_transfer(from, amount);
                }
                None
            }
        }
    }

    /// A restarted node: its money and transactions rebuilt from its log alone (its
    /// snapshots are not: a node that crashed forgets what it recorded). `out` gets what
    /// recovery must send (inquiries, decisions and payments to finish).
    ///
    /// # Panics
    /// If the log does not start with exactly one [`Record::Opened`].
    pub fn recover(id: NodeId, records: &[Record], out: &mut Vec<Effect>) -> Self {
        let Some(Record::Opened { balance }) = records.first() else {
            panic!("node {id}: a log starts with Opened")
        };
        let mut b = Branch::new(id, *balance);
        for rec in &records[1..] {
            assert!(!matches!(rec, Record::Opened { .. }), "node {id}: Opened twice");
            b.two.replay(&mut b.part, rec);
            b.three.replay(&mut b.part, rec);
            b.paxos.replay(&mut b.part, rec);
            b.part.replay(rec);
        }
        for p in Protocol::ALL {
            with_machine!(b, p, |m| run_step(m, &mut b.part, false, out, |m, part, cx| m
                .recovered(part, cx)));
        }
        b
    }

    /// Time is up for `tx` here (SPEC chapter 5's logical timeouts, or live mode's);
    /// `reach` are the nodes this one can reach now.
    pub fn on_timeout(
        &mut self,
        tx: TxnId,
        reason: AbortReason,
        reach: &[NodeId],
        out: &mut Vec<Effect>,
    ) {
        let relay = self.relay;
        let p = self.protocol(tx).unwrap_or_default();
        with_machine!(self, p, |m| run_step(m, &mut self.part, relay, out, |m, part, cx| m
            .on_timeout(part, cx, tx, reason, reach)));
    }

    /// `peer`'s process is gone (live mode): each protocol gives up what can no longer
    /// come from it.
    pub fn on_peer_gone(&mut self, peer: NodeId, out: &mut Vec<Effect>) {
        let relay = self.relay;
        for p in Protocol::ALL {
            with_machine!(self, p, |m| run_step(m, &mut self.part, relay, out, |m, part, cx| m
                .on_peer_gone(part, cx, peer)));
        }
    }

    /// This node coordinates `spec` by `protocol`.
    pub fn on_start(&mut self, spec: &TxSpec, protocol: Protocol, out: &mut Vec<Effect>) {
        let (relay, nodes) = (self.relay, self.nodes());
        with_machine!(self, protocol, |m| run_step(
            m,
            &mut self.part,
            relay,
            out,
            |m, part, cx| m.start(part, cx, spec, &nodes)
        ));
    }

    /// This node initiates snapshot `id`: it records now. Returns the recorded balance.
    pub fn on_begin_snapshot(&mut self, id: SnapshotId, out: &mut Vec<Effect>) -> Amount {
        let here = self.holdings();
        let balance = here.balance;
        self.snapshots.record(id, here, &self.peers, None, out);
        balance
    }

    /// What this node recorded for each of `ids`.
    pub fn collect(&self, ids: &[SnapshotId]) -> Vec<LocalReport> {
        ids.iter().map(|&id| self.snapshots.report(id)).collect()
    }

    /// The three machines, for the questions every one answers.
    fn machines(&self) -> [(Protocol, &dyn Facts); 3] {
        [
            (Protocol::TwoPc, &self.two),
            (Protocol::ThreePc, &self.three),
            (Protocol::Paxos, &self.paxos),
        ]
    }

    /// The protocol `tx` runs by, if this node knows it.
    pub fn protocol(&self, tx: TxnId) -> Option<Protocol> {
        let known = self.machines().into_iter().find(|(_, m)| m.knows(tx)).map(|(p, _)| p);
        known.or_else(|| self.part.protocol(tx))
    }

    /// The state of `tx` at this node: its leg's if it is a participant (or its
    /// pre-commit), else its coordinator's, else what it learnt; `None` if it never
    /// heard of `tx` (or voted NO, which leaves nothing behind).
    pub fn state(&self, tx: TxnId) -> TxState {
        let machine = self.protocol(tx).map(|p| self.machines()[p.index()].1);
        match machine {
            Some(m) => state_at(m, &self.part, tx),
            None => self.part.tx_state(tx),
        }
        .unwrap_or(TxState::None)
    }

    /// The decision this node took or learnt on `tx`, if any.
    pub fn decision(&self, tx: TxnId) -> Option<TxOutcome> {
        self.machines().into_iter().find_map(|(_, m)| m.decision(tx))
    }

    /// Whether this node, as `tx`'s coordinator, is done with it: aborted, or committed
    /// and acked by every participant.
    pub fn finished(&self, tx: TxnId) -> bool {
        self.machines().into_iter().any(|(_, m)| m.finished(tx))
    }

    /// Whether this node has nothing more to do as a participant of `tx` (voted NO,
    /// ended, or never was one).
    pub fn done_with(&self, tx: TxnId) -> bool {
        self.part.done_with(tx)
    }

    /// Whether this node's part of `tx` is committed here.
    pub fn applied(&self, tx: TxnId) -> bool {
        self.part.applied(tx)
    }

    /// Transactions this node voted YES on and has no decision for.
    pub fn in_doubt(&self) -> Vec<TxnId> {
        self.part.in_doubt()
    }

    /// Transactions this node waits on: in doubt as a participant, voting or missing
    /// acks as a coordinator, terminating or leading a ballot.
    pub fn waiting(&self) -> Vec<TxnId> {
        let mut v = self.part.in_doubt();
        for (_, m) in self.machines() {
            v.extend(m.waiting());
        }
        v.sort();
        v.dedup();
        v
    }

    /// The nodes of `tx` as far as this node knows them.
    fn members(&self, tx: TxnId) -> Vec<NodeId> {
        let mut v = self.part.spec(tx).map_or(Vec::new(), TxSpec::members);
        for (_, m) in self.machines() {
            v.extend(m.members(tx));
        }
        v
    }

    /// Transactions this node waits on (see [`Branch::waiting`]) in which `peer` takes
    /// part: after `peer` restarts, what they need must be sent again.
    pub fn waiting_with(&self, peer: NodeId) -> Vec<TxnId> {
        self.waiting().into_iter().filter(|&tx| self.members(tx).contains(&peer)).collect()
    }

    /// Transactions whose money `peer` owes this node as far as it knows.
    pub fn owed_by(&self, peer: NodeId) -> Vec<TxnId> {
        self.part.owed_by(peer)
    }

    /// The payment of `tx` to `peer` again, if this node pays it and has paid.
    pub fn paid_to(&self, tx: TxnId, peer: NodeId) -> Option<CommitMsg> {
        self.part.paid_to(tx, peer)
    }

    /// Every transaction that ended here, with how: what `Check` holds against the other
    /// nodes' (committed at one node and aborted at another is a split).
    pub fn ended(&self) -> Vec<(TxnId, TxState)> {
        let mut v: Vec<(TxnId, TxState)> = self.part.ended().collect();
        for (_, m) in self.machines() {
            for tx in m.decided() {
                let st = self.state(tx);
                if st.is_final() {
                    v.push((tx, st));
                }
            }
        }
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> NodeId {
        NodeId(i)
    }

    // A Send debits at once and emits one Transfer.
    #[test]
    fn send_debits_and_emits_a_transfer() {
        let mut b = Branch::new(n(1), Amount(1000));
        let mut out = Vec::new();
        b.on_setup(&[n(2)], &[], &mut out);
        assert_eq!(b.on_send(n(2), Amount(300), &mut out), Ok(()));
        assert_eq!(b.balance(), Amount(700));
        // The debit is logged before the Transfer leaves, so a restart keeps it.
        assert_eq!(
            out,
            vec![
                Effect::Log {
                    rec: Record::Sent { to: n(2), amount: Amount(300) },
                    force: Force::Lazy
                },
                Effect::Send { to: n(2), msg: ChannelMsg::Transfer { amount: Amount(300) } },
            ]
        );
    }

    // Recovery: money moves and transfers come back from the log alone.
    #[test]
    fn a_branch_recovers_its_money_from_its_log() {
        let mut b = Branch::new(n(1), Amount(100));
        let mut out = Vec::new();
        b.on_setup(&[n(2)], &[], &mut out);
        b.on_send(n(2), Amount(30), &mut out).unwrap();
        b.on_deliver(n(2), ChannelMsg::Transfer { amount: Amount(5) }, &mut out);
        let mut log = vec![Record::Opened { balance: Amount(100) }];
        log.extend(out.iter().filter_map(|e| match e {
            Effect::Log { rec, .. } => Some(rec.clone()),
            _ => None,
        }));
        let r = Branch::recover(n(1), &log, &mut Vec::new());
        assert_eq!(r.balance(), Amount(75));
    }

    // ERR_SEND: an amount above the balance changes nothing.
    #[test]
    fn send_above_balance_changes_nothing() {
        let mut b = Branch::new(n(1), Amount(10));
        let mut out = Vec::new();
        b.on_setup(&[n(2)], &[], &mut out);
        assert_eq!(b.on_send(n(2), Amount(11), &mut out), Err(ErrSend));
        assert_eq!(b.balance(), Amount(10));
        assert!(out.is_empty());
        assert_eq!(b.on_send(n(2), Amount(10), &mut out), Ok(()));
        assert_eq!(b.balance(), Amount(0));
    }

    // The spec's example 1, at node 2: the snapshot records 1100 and channel 1->2 empty.
    #[test]
    fn spec_example_one_at_node_two() {
        let mut b = Branch::new(n(2), Amount(500));
        let mut out = Vec::new();
        b.on_setup(&[n(1)], &[], &mut out);
        b.on_send(n(1), Amount(100), &mut out).unwrap();
        b.on_deliver(n(1), ChannelMsg::Transfer { amount: Amount(300) }, &mut out);
        b.on_deliver(n(1), ChannelMsg::Transfer { amount: Amount(400) }, &mut out);
        let rec = b.on_deliver(n(1), ChannelMsg::Marker { snapshot: SnapshotId(0) }, &mut out);
        assert_eq!(rec, Some(Amount(1100)));
        let r = b.collect(&[SnapshotId(0)]);
        let st = r[0].recorded.as_ref().unwrap();
        assert_eq!(st.balance, Amount(1100));
        assert!(st.open.is_empty());
        assert_eq!(st.channels, vec![]);
    }

    // A credit arriving after the receiver recorded, before the sender's marker, is in
    // that channel's state, like a Transfer.
    #[test]
    fn a_credit_in_flight_is_recorded() {
        use crate::wire::TwoPcMsg;
        let mut b = Branch::new(n(2), Amount(50));
        let mut out = Vec::new();
        b.on_setup(&[n(1), n(3)], &[], &mut out);
        b.on_deliver(n(3), ChannelMsg::Marker { snapshot: SnapshotId(0) }, &mut out);
        let spec = TxSpec::transfer(TxnId(1), n(1), n(2), Amount(30), n(1));
        let prepare = CommitMsg::TwoPc(TwoPcMsg::Prepare { spec });
        b.on_deliver(n(1), ChannelMsg::Commit(prepare), &mut out);
        let credit = ChannelMsg::Commit(CommitMsg::Credit { tx: TxnId(1), amount: Amount(30) });
        b.on_deliver(n(1), credit, &mut out);
        b.on_deliver(n(1), ChannelMsg::Marker { snapshot: SnapshotId(0) }, &mut out);
        let r = b.collect(&[SnapshotId(0)]);
        let st = r[0].recorded.as_ref().unwrap();
        assert_eq!(st.balance, Amount(50));
        assert_eq!(st.channels, vec![(n(1), Amount(30))]);
    }

    // A joining node records its opening balance for every running snapshot, markers first.
    #[test]
    fn setup_joins_running_snapshots() {
        let mut b = Branch::new(n(5), Amount(40));
        let mut out = Vec::new();
        b.on_setup(&[n(2), n(1)], &[SnapshotId(3)], &mut out);
        assert_eq!(b.peers(), &[n(1), n(2)]);
        assert_eq!(out.len(), 2);
        assert_eq!(b.snapshots().get(SnapshotId(3)).unwrap().balance, Amount(40));
    }
}
