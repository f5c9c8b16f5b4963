//! One bank branch (a node): its balance, its peers and its snapshots.
//!
//! [`Branch`] is everything a node process knows, as a pure machine. The node driver
//! calls one `on_*` method per command or delivered message and carries out the effects
//! in order. Money moves only two ways: `on_send` debits and emits a Transfer, and
//! delivering a Transfer credits it, so the money of a system is conserved as long as
//! every Transfer emitted is delivered exactly once.

use crate::ids::{Amount, NodeId, SnapshotId};
use crate::protocol::{Effect, Snapshots};
use crate::wire::{ChannelMsg, LocalReport};

/// A Send refused because the balance is short. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrSend;

/// A node's whole protocol state.
#[derive(Debug, Clone)]
pub struct Branch {
    id: NodeId,
    balance: Amount,
    /// Every other node, sorted by id: the node's outgoing (and incoming) channels.
    peers: Vec<NodeId>,
    snapshots: Snapshots,
}

impl Branch {
    /// A new branch with its opening balance and no peers.
    pub fn new(id: NodeId, balance: Amount) -> Self {
        Branch { id, balance, peers: Vec::new(), snapshots: Snapshots::new() }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current balance.
    pub fn balance(&self) -> Amount {
        self.balance
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
            self.snapshots.record(id, self.balance, &self.peers, None, out);
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

    /// Debit `amount` and emit a Transfer to `to`, or refuse when the balance is short.
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
        self.balance = self.balance.checked_sub(amount).ok_or(ErrSend)?;
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
                // The total money is at most Amount::MAX, so no balance can overflow.
                self.balance = self.balance.checked_add(amount).expect("total money is bounded");
                self.snapshots.on_transfer(from, amount);
                None
            }
            ChannelMsg::Marker { snapshot } => {
                self.snapshots.on_marker(from, snapshot, self.balance, &self.peers, out)
            }
        }
    }

    /// This node initiates snapshot `id`: it records now. Returns the recorded balance.
    pub fn on_begin_snapshot(&mut self, id: SnapshotId, out: &mut Vec<Effect>) -> Amount {
        self.snapshots.record(id, self.balance, &self.peers, None, out);
        self.balance
    }

    /// What this node recorded for each of `ids`.
    pub fn collect(&self, ids: &[SnapshotId]) -> Vec<LocalReport> {
        ids.iter().map(|&id| self.snapshots.report(id)).collect()
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
        assert_eq!(
            out,
            vec![Effect::Send { to: n(2), msg: ChannelMsg::Transfer { amount: Amount(300) } }]
        );
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
