//! The master's ledger of what every channel holds, used to schedule deliveries.
//!
//! The master routes: it must know which channels are non-empty to pick a random one
//! (`Receive r`, `ReceiveAll`), to reject a `Receive` on an empty channel, and to keep
//! many commands in flight without waiting for each answer. Every message on a channel
//! exists because of a command the master gave: a Transfer because of a `Send` (which may
//! still be refused: such an entry is *pending* until the node answers), and a marker
//! because a node recorded a snapshot, which happens exactly on `BeginSnapshot`, at the
//! first marker of a snapshot a node receives, or when a node joins a running snapshot.
//! So the ledger can follow marker flooding without asking the nodes.
//!
//! The nodes stay the authority: they apply the rules and report what they delivered and
//! recorded, and the master checks every report against this ledger; a mismatch is a bug
//! and stops the run. Pure: no I/O.

use crate::ids::{Amount, NodeId, SnapshotId};
use crate::wire::ChannelMsg;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// A channel: (source, destination).
pub type ChannelId = (NodeId, NodeId);

/// A ticket naming one pending Send until its answer comes.
pub type Ticket = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    msg: ChannelMsg,
    /// `Some` while the Send that put it there has not been answered.
    pending: Option<Ticket>,
}

/// What the head of a channel is, as far as the master knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Nothing is in the channel, and nothing may be.
    Empty,
    /// The head comes from a Send not answered yet: it may not exist.
    Pending,
    /// This message is at the head.
    Ready(ChannelMsg),
}

/// One delivery as predicted by the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The message taken.
    pub msg: ChannelMsg,
    /// Whether taking it makes the receiver record (a first marker).
    pub records: bool,
}

#[derive(Debug, Clone, Default)]
struct SnapshotLedger {
    members: BTreeSet<NodeId>,
    recorded: HashSet<NodeId>,
    markers_in_flight: usize,
}

impl SnapshotLedger {
    fn complete(&self) -> bool {
        self.markers_in_flight == 0 && self.recorded.len() == self.members.len()
    }
}

/// The channels, nodes and snapshots of one system, as the master knows them.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Node ids with their opening balances, by id.
    nodes: std::collections::BTreeMap<NodeId, Amount>,
    created: Amount,
    channels: HashMap<ChannelId, VecDeque<Entry>>,
    pending_into: HashMap<NodeId, usize>,
    pending_total: usize,
    snapshots: Vec<SnapshotLedger>,
    /// Snapshots not complete yet, by id.
    running: BTreeSet<SnapshotId>,
}

impl Ledger {
    /// An empty system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether node `id` exists.
    pub fn has_node(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.keys().copied()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// All money created so far.
    pub fn created(&self) -> Amount {
        self.created
    }

    /// Money created by these nodes.
    pub fn created_by(&self, nodes: &[NodeId]) -> Amount {
        nodes
            .iter()
            .filter_map(|n| self.nodes.get(n))
            .copied()
            .sum()
    }

    /// Adds node `id` with `amount`. It joins every running snapshot: it records at once
    /// and sends their markers to every other node, and every node that has recorded one
    /// of them sends that marker on its new channel to `id`. Returns the joined snapshots.
    ///
    /// # Panics
    /// If `id` exists or the total would pass [`Amount::MAX`]: the master checks both.
    pub fn add_node(&mut self, id: NodeId, amount: Amount) -> Vec<SnapshotId> {
        assert!(!self.nodes.contains_key(&id), "node {id} exists");
        self.created = self
            .created
            .checked_add(amount)
            .expect("the master checks the total");
        let others: Vec<NodeId> = self.nodes.keys().copied().collect();
        self.nodes.insert(id, amount);
        let join: Vec<SnapshotId> = self.running.iter().copied().collect();
        for &k in &join {
            let snap = &mut self.snapshots[k.0 as usize];
            snap.members.insert(id);
            snap.recorded.insert(id);
            for &x in &others {
                self.push_marker((id, x), k);
            }
        }
        for &x in &others {
            for &k in &join {
                if self.snapshots[k.0 as usize].recorded.contains(&x) {
                    self.push_marker((x, id), k);
                }
            }
        }
        join
    }

    /// Whether `node` has recorded snapshot `k`.
    pub fn has_recorded(&self, node: NodeId, k: SnapshotId) -> bool {
        self.snapshots
            .get(k.0 as usize)
            .is_some_and(|s| s.recorded.contains(&node))
    }

    /// A Send `from` → `to` was given and not answered yet.
    pub fn send(&mut self, from: NodeId, to: NodeId, amount: Amount, ticket: Ticket) {
        let msg = ChannelMsg::Transfer { amount };
        self.channels
            .entry((from, to))
            .or_default()
            .push_back(Entry {
                msg,
                pending: Some(ticket),
            });
        *self.pending_into.entry(to).or_default() += 1;
        self.pending_total += 1;
    }

    /// The Send with `ticket` on `from` → `to` was answered: enqueued (`ok`) or refused.
    ///
    /// # Panics
    /// If no such pending Send exists.
    pub fn resolve(&mut self, from: NodeId, to: NodeId, ticket: Ticket, ok: bool) {
        let q = self
            .channels
            .get_mut(&(from, to))
            .expect("a pending send has a channel");
        let at = q
            .iter()
            .rposition(|e| e.pending == Some(ticket))
            .expect("the send is pending");
        if ok {
            q[at].pending = None;
        } else {
            q.remove(at);
            if q.is_empty() {
                self.channels.remove(&(from, to));
            }
        }
        *self.pending_into.get_mut(&to).expect("counted") -= 1;
        self.pending_total -= 1;
    }

    /// Pending Sends into `node`.
    pub fn pending_into(&self, node: NodeId) -> usize {
        self.pending_into.get(&node).copied().unwrap_or(0)
    }

    /// Pending Sends anywhere.
    pub fn pending_total(&self) -> usize {
        self.pending_total
    }

    /// The head of channel `c`.
    pub fn head(&self, c: ChannelId) -> Head {
        match self.channels.get(&c).and_then(|q| q.front()) {
            None => Head::Empty,
            Some(Entry {
                pending: Some(_), ..
            }) => Head::Pending,
            Some(Entry { msg, .. }) => Head::Ready(*msg),
        }
    }

    /// Whether channel `c` holds anything (pending entries included).
    pub fn is_empty(&self, c: ChannelId) -> bool {
        !self.channels.contains_key(&c)
    }

    /// Sources of the non-empty channels into `node`, by id. Exact only when
    /// `pending_into(node)` is 0.
    pub fn incoming(&self, node: NodeId) -> Vec<NodeId> {
        self.nodes
            .keys()
            .copied()
            .filter(|&s| s != node && !self.is_empty((s, node)))
            .collect()
    }

    /// Every non-empty channel, by source then destination.
    pub fn nonempty(&self) -> Vec<ChannelId> {
        let mut v: Vec<ChannelId> = self.channels.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Takes the head of channel `c` = (s, d), following the marker rule at d.
    ///
    /// # Panics
    /// If the head is not [`Head::Ready`]: the master waits for pending heads first.
    pub fn deliver(&mut self, c: ChannelId) -> Delivery {
        let q = self
            .channels
            .get_mut(&c)
            .expect("deliver from a non-empty channel");
        let entry = q.pop_front().expect("non-empty");
        assert!(entry.pending.is_none(), "deliver a confirmed head only");
        if q.is_empty() {
            self.channels.remove(&c);
        }
        let mut records = false;
        if let ChannelMsg::Marker { snapshot } = entry.msg {
            let snap = &mut self.snapshots[snapshot.0 as usize];
            snap.markers_in_flight -= 1;
            if !snap.recorded.contains(&c.1) {
                records = true;
                self.record(c.1, snapshot);
            }
            self.update_running(snapshot);
        }
        Delivery {
            msg: entry.msg,
            records,
        }
    }

    /// Snapshot `node` starts: a new id; every node is a member; `node` records now.
    pub fn begin(&mut self, node: NodeId) -> SnapshotId {
        let id = SnapshotId(self.snapshots.len() as u32);
        self.snapshots.push(SnapshotLedger {
            members: self.nodes.keys().copied().collect(),
            ..SnapshotLedger::default()
        });
        self.running.insert(id);
        self.record(node, id);
        self.update_running(id);
        id
    }

    /// The members of snapshot `k`, by id.
    pub fn members(&self, k: SnapshotId) -> Vec<NodeId> {
        self.snapshots[k.0 as usize]
            .members
            .iter()
            .copied()
            .collect()
    }

    /// Whether snapshot `k` is complete (every member recorded, no marker in a channel).
    pub fn is_complete(&self, k: SnapshotId) -> bool {
        self.snapshots[k.0 as usize].complete()
    }

    fn record(&mut self, node: NodeId, k: SnapshotId) {
        self.snapshots[k.0 as usize].recorded.insert(node);
        let others: Vec<NodeId> = self.nodes.keys().copied().filter(|&x| x != node).collect();
        for x in others {
            self.push_marker((node, x), k);
        }
    }

    fn push_marker(&mut self, c: ChannelId, k: SnapshotId) {
        let msg = ChannelMsg::Marker { snapshot: k };
        self.channels
            .entry(c)
            .or_default()
            .push_back(Entry { msg, pending: None });
        self.snapshots[k.0 as usize].markers_in_flight += 1;
    }

    fn update_running(&mut self, k: SnapshotId) {
        if self.snapshots[k.0 as usize].complete() {
            self.running.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> NodeId {
        NodeId(i)
    }
    fn transfer(a: u64) -> ChannelMsg {
        ChannelMsg::Transfer { amount: Amount(a) }
    }
    fn marker(k: u32) -> ChannelMsg {
        ChannelMsg::Marker {
            snapshot: SnapshotId(k),
        }
    }
    fn two_nodes() -> Ledger {
        let mut l = Ledger::new();
        l.add_node(n(1), Amount(1000));
        l.add_node(n(2), Amount(500));
        l
    }

    // A Send's entry is pending until answered; a refused Send leaves nothing.
    #[test]
    fn pending_sends_resolve_or_vanish() {
        let mut l = two_nodes();
        l.send(n(1), n(2), Amount(300), 7);
        assert_eq!(l.head((n(1), n(2))), Head::Pending);
        assert_eq!(l.pending_into(n(2)), 1);
        l.resolve(n(1), n(2), 7, true);
        assert_eq!(l.head((n(1), n(2))), Head::Ready(transfer(300)));
        l.send(n(2), n(1), Amount(5000), 8);
        l.resolve(n(2), n(1), 8, false);
        assert!(l.is_empty((n(2), n(1))));
        assert_eq!(l.pending_total(), 0);
    }

    // Marker flooding: the initiator's markers, then the first marker makes the receiver record.
    #[test]
    fn markers_flood_and_complete_the_snapshot() {
        let mut l = two_nodes();
        let k = l.begin(n(1));
        assert_eq!(l.head((n(1), n(2))), Head::Ready(marker(0)));
        assert!(!l.is_complete(k));
        let d = l.deliver((n(1), n(2)));
        assert_eq!(
            d,
            Delivery {
                msg: marker(0),
                records: true
            }
        );
        assert_eq!(l.head((n(2), n(1))), Head::Ready(marker(0)));
        let d = l.deliver((n(2), n(1)));
        assert_eq!(
            d,
            Delivery {
                msg: marker(0),
                records: false
            }
        );
        assert!(l.is_complete(k));
        assert!(l.nonempty().is_empty());
    }

    // A node created mid-snapshot joins it; a node created after completion does not.
    #[test]
    fn a_new_node_joins_only_running_snapshots() {
        let mut l = two_nodes();
        let k = l.begin(n(1));
        assert_eq!(l.add_node(n(3), Amount(1)), vec![k]);
        assert!(l.has_recorded(n(3), k));
        assert_eq!(
            l.head((n(1), n(3))),
            Head::Ready(marker(0)),
            "initiator marks the new channel"
        );
        assert_eq!(l.head((n(3), n(2))), Head::Ready(marker(0)));
        assert!(l.is_empty((n(2), n(3))), "node 2 has not recorded yet");
        while let Some(&c) = l.nonempty().first() {
            l.deliver(c);
        }
        assert!(l.is_complete(k));
        assert_eq!(l.add_node(n(4), Amount(1)), vec![]);
        assert_eq!(l.members(k), vec![n(1), n(2), n(3)]);
        assert_eq!(l.created(), Amount(1502));
    }
}
