//! One bank branch (a node): its money, its peers and its snapshots.
//!
//! [`Branch`] is everything a node process knows, as a pure machine. The node driver
//! calls one `on_*` method per command or delivered message and carries out the effects
//! in order. Money moves three ways: `on_send` debits and emits a Transfer, delivering a
//! Transfer credits it, and a committed atomic transfer debits one node and credits
//! another through one `Credit` message (`protocol::commit` runs the three commit
//! protocols and owns the balance, so that money held by a transaction cannot be sent).
//! Money is conserved as long as every money-carrying message is applied exactly once.

use crate::ids::TxnId;
use crate::ids::{Amount, NodeId, SnapshotId};
use crate::protocol::two_pc::{AbortReason, TxEffect, TxNode, TxRecord};
use crate::protocol::{Effect, Snapshots};
use crate::wire::{ChannelMsg, LocalReport, Protocol, TxSpec};

/// A Send refused because the balance is short. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrSend;

/// A node's whole protocol state.
#[derive(Debug, Clone)]
pub struct Branch {
    id: NodeId,
    /// The balance, held money and two-phase-commit transactions.
    money: TxNode,
    /// Every other node, sorted by id: the node's outgoing (and incoming) channels.
    peers: Vec<NodeId>,
    snapshots: Snapshots,
}

impl Branch {
    /// A new branch with its opening balance and no peers.
    pub fn new(id: NodeId, balance: Amount) -> Self {
        Branch {
            id,
            money: TxNode::new(id, balance),
            peers: Vec::new(),
            snapshots: Snapshots::new(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// All money this node owns, held money included.
    pub fn balance(&self) -> Amount {
        self.money.balance()
    }

    /// The two-phase-commit state: held money, transactions.
    pub fn money(&self) -> &TxNode {
        &self.money
    }

    /// Live mode (relaying on, see [`TxNode::set_relay`]) or scripted.
    pub fn set_live(&mut self, live: bool) {
        self.money.set_relay(live);
    }

    /// The peers, sorted by id.
    pub fn peers(&self) -> &[NodeId] {
        &self.peers
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
            self.snapshots.record(id, self.money.balance(), &self.peers, None, out);
        }
    }

    /// `peer` was created after this node and joined the snapshots in `join`.
    pub fn on_add_peer(&mut self, peer: NodeId, join: &[SnapshotId], out: &mut Vec<Effect>) {
        self.insert_peer(peer);
        self.snapshots.on_peer_added(peer, join, out);
    }

    fn insert_peer(&mut self, peer: NodeId) {
        assert_ne!(peer, self.id, "a node is not its own peer");
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
        assert!(self.peers.binary_search(&to).is_ok(), "node {} has no peer {to}", self.id);
        if !self.money.withdraw(amount) {
            return Err(ErrSend);
        }
        out.push(Effect::Log { rec: TxRecord::Sent { to, amount }, force: false });
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
                out.push(Effect::Log { rec: TxRecord::Deposited { from, amount }, force: false });
                self.money.deposit(amount);
                self.snapshots.on_transfer(from, amount);
                None
            }
            ChannelMsg::Marker { snapshot } => {
                self.snapshots.on_marker(from, snapshot, self.money.balance(), &self.peers, out)
            }
            ChannelMsg::Tx(m) => {
                // A credit is money arriving: recorded in channel state like a Transfer,
                // but only the first time (a resent or duplicated credit changes nothing).
                let fresh = m.money().filter(|(tx, _)| !self.money.applied(*tx));
                let mut tx_out = Vec::new();
                self.money.on_message(from, m, &mut tx_out);
                if let Some((_, amount)) = fresh {
                    self.snapshots.on_transfer(from, amount);
                }
                lift(tx_out, out);
                None
            }
        }
    }

    /// A restarted node: its money and transactions rebuilt from its log alone (its
    /// snapshots are not: a node that crashed forgets what it recorded). `out` gets what
    /// recovery must send (inquiries, decisions and credits to finish).
    pub fn recover(id: NodeId, records: &[TxRecord], out: &mut Vec<Effect>) -> Self {
        let mut tx_out = Vec::new();
        let money = TxNode::recover(id, records, &mut tx_out);
        lift(tx_out, out);
        Branch { id, money, peers: Vec::new(), snapshots: Snapshots::new() }
    }

    /// A timeout for `tx` here (SPEC chapter 5's logical timeouts), every member of the
    /// transfer taken as reachable.
    pub fn on_timeout(&mut self, tx: TxnId, reason: AbortReason, out: &mut Vec<Effect>) {
        let mut tx_out = Vec::new();
        self.money.on_timeout(tx, reason, &mut tx_out);
        lift(tx_out, out);
    }

    /// As [`Branch::on_timeout`], knowing which nodes this one can reach now.
    pub fn on_timeout_reach(
        &mut self,
        tx: TxnId,
        reason: AbortReason,
        reach: &[NodeId],
        out: &mut Vec<Effect>,
    ) {
        let mut tx_out = Vec::new();
        self.money.on_timeout_reach(tx, reason, reach, &mut tx_out);
        lift(tx_out, out);
    }

    /// This node coordinates the transfer `spec` by two-phase commit.
    pub fn on_transfer(&mut self, spec: TxSpec, out: &mut Vec<Effect>) {
        self.on_transfer_with(spec, Protocol::TwoPc, [spec.from, spec.to, spec.coord], out)
    }

    /// This node coordinates the transfer `spec` by `protocol` (`acceptors`: Paxos
    /// Commit's).
    pub fn on_transfer_with(
        &mut self,
        spec: TxSpec,
        protocol: Protocol,
        acceptors: [NodeId; 3],
        out: &mut Vec<Effect>,
    ) {
        let mut tx_out = Vec::new();
        self.money.on_start_with(spec, protocol, acceptors, &mut tx_out);
        lift(tx_out, out);
    }

    /// This node initiates snapshot `id`: it records now. Returns the recorded balance.
    pub fn on_begin_snapshot(&mut self, id: SnapshotId, out: &mut Vec<Effect>) -> Amount {
        let balance = self.money.balance();
        self.snapshots.record(id, balance, &self.peers, None, out);
        balance
    }

    /// What this node recorded for each of `ids`.
    pub fn collect(&self, ids: &[SnapshotId]) -> Vec<LocalReport> {
        ids.iter().map(|&id| self.snapshots.report(id)).collect()
    }
}

/// The two-phase-commit machine's effects as the node's effects, in order.
fn lift(tx_out: Vec<TxEffect>, out: &mut Vec<Effect>) {
    out.extend(tx_out.into_iter().map(|e| match e {
        TxEffect::Send { to, msg } => Effect::Send { to, msg: ChannelMsg::Tx(msg) },
        TxEffect::Log { rec, force } => Effect::Log { rec, force },
        TxEffect::Point(p) => Effect::Point(p),
        TxEffect::Decided { tx, outcome } => Effect::Decided { tx, outcome },
        TxEffect::Dropped { tx, amount } => Effect::Dropped { tx, amount },
    }));
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
                Effect::Log { rec: TxRecord::Sent { to: n(2), amount: Amount(300) }, force: false },
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
        let mut log = vec![TxRecord::Opened { balance: Amount(100) }];
        log.extend(out.iter().filter_map(|e| match e {
            Effect::Log { rec, .. } => Some(*rec),
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
        use crate::wire::{TxMsg, TxSpec};
        let mut b = Branch::new(n(2), Amount(50));
        let mut out = Vec::new();
        b.on_setup(&[n(1), n(3)], &[], &mut out);
        b.on_deliver(n(3), ChannelMsg::Marker { snapshot: SnapshotId(0) }, &mut out);
        let spec = TxSpec { tx: TxnId(1), from: n(1), to: n(2), amount: Amount(30), coord: n(1) };
        b.on_deliver(n(1), ChannelMsg::Tx(TxMsg::Prepare { spec }), &mut out);
        let credit = ChannelMsg::Tx(TxMsg::Credit { tx: TxnId(1), amount: Amount(30) });
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
