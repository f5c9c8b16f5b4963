//! The master's ledger of what every channel holds, used to schedule deliveries.
//!
//! The master routes: it must know which channels are non-empty to pick a random one
//! (`Receive r`, `ReceiveAll`), to reject a `Receive` on an empty channel, and to keep
//! many commands in flight without waiting for each answer. Every message on a channel
//! and every change of a balance exists because of a command the master gave: a Send
//! debits and enqueues a Transfer unless the balance is short (the ledger follows each
//! balance, so it knows which Sends will be refused), a delivered Transfer credits, and a
//! marker is sent because a node recorded a snapshot, which happens exactly on
//! `BeginSnapshot`, at the first marker of a snapshot a node receives, or when a node
//! joins a running snapshot.
//!
//! Two-phase-commit messages are the exception: what a node does with one is reported,
//! not predicted. The master waits for that report (the messages the step sent, the
//! node's balance and held money) and applies it here before it decides anything else.
//!
//! The nodes stay the authority: they apply the rules and report what they did, and the
//! master checks every report against this ledger (two implementations of the rules
//! cross-checked on every command); a mismatch is a bug and stops the run. Pure: no I/O.

use super::holdings::Holdings;
use crate::ids::{AccountName, Amount, NodeId, SnapshotId, TxnId};
use crate::wire::{ChannelMsg, CommitMsg, Money, TxSpec};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::{BTreeSet, VecDeque};

/// A channel: (source, destination).
pub type ChannelId = (NodeId, NodeId);

/// One delivery as predicted by the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message taken.
    pub msg: ChannelMsg,
    /// Whether taking it makes the receiver record (a first marker).
    pub records: bool,
}

#[derive(Debug, Clone, Default)]
struct SnapshotLedger {
    members: BTreeSet<NodeId>,
    /// The members that recorded, each with the money created at it by then (money
    /// created later, by `CreateAccount`, is after the cut).
    recorded: HashMap<NodeId, Amount>,
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
    /// The nodes, their money (as predicted, or as last reported) and their accounts.
    holdings: Holdings,
    /// Each channel's messages with the order in which they were enqueued system-wide.
    channels: HashMap<ChannelId, VecDeque<(u64, ChannelMsg)>>,
    enqueued: u64,
    snapshots: Vec<SnapshotLedger>,
    /// Snapshots not complete yet, by id.
    running: BTreeSet<SnapshotId>,
    /// Nodes whose process is dead (`Crash`, `CrashAt`) and not restarted yet.
    down: BTreeSet<NodeId>,
    /// Channels whose queued messages died with their receiver's process: they are resent
    /// (from this ledger) once both ends are up again.
    lost: BTreeSet<ChannelId>,
    /// Per (node, peer): how many links the node's current process has had with the peer.
    gens: HashMap<ChannelId, u32>,
    /// Channels that deliver nothing for now (`Hold`).
    held_channels: BTreeSet<ChannelId>,
    /// Nodes whose process is stopped (`Pause`): they take no step.
    paused: BTreeSet<NodeId>,
    /// The partitions in force (`Partition`): each cuts its nodes off from all others.
    cuts: Vec<BTreeSet<NodeId>>,
    /// Payments (transaction, payer, payee) delivered (and so applied: a payment is logged
    /// before anything else happens at its receiver). A copy still in a channel, resent
    /// by a recovering payer, carries no money any more.
    credited: HashSet<(TxnId, NodeId, NodeId)>,
}

impl Ledger {
    /// An empty system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether node `id` exists.
    pub fn has_node(&self, id: NodeId) -> bool {
        self.holdings.has_node(id)
    }

    /// Every node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.holdings.nodes()
    }

    /// All money created so far.
    pub fn created(&self) -> Amount {
        self.holdings.created()
    }

    /// The nodes' money and the accounts.
    pub fn holdings(&self) -> &Holdings {
        &self.holdings
    }

    /// `CreateAccount`: account `name` at `node` with `amount` of new money.
    pub fn open_account(&mut self, name: AccountName, node: NodeId, amount: Amount) {
        self.holdings.open_account(name, node, amount);
    }

    /// The money snapshot `k`'s members had created when each recorded it: what the
    /// snapshot must hold.
    pub fn created_in(&self, k: SnapshotId) -> Amount {
        self.snapshots
            .get(k.0 as usize)
            .map_or(Amount::ZERO, |s| s.recorded.values().copied().sum())
    }

    /// Adds node `id` with `amount`. It joins every running snapshot: it records at once
    /// and sends their markers to every other node, and every node that has recorded one
    /// of them sends that marker on its new channel to `id`. Returns the joined snapshots.
    ///
    /// # Panics
    /// If `id` exists or the total would pass [`Amount::MAX`]: the master checks both.
    pub fn add_node(&mut self, id: NodeId, amount: Amount) -> Vec<SnapshotId> {
        assert!(!self.has_node(id), "node {id} exists");
        let others: Vec<NodeId> = self.nodes().collect();
        self.holdings.add_node(id, amount);
        self.linked(id);
        let join: Vec<SnapshotId> = self.running.iter().copied().collect();
        for &k in &join {
            let snap = &mut self.snapshots[k.0 as usize];
            snap.members.insert(id);
            snap.recorded.insert(id, amount);
            for &x in &others {
                self.push_marker((id, x), k);
            }
        }
        for &x in &others {
            for &k in &join {
                if self.snapshots[k.0 as usize].recorded.contains_key(&x) {
                    self.push_marker((x, id), k);
                }
            }
        }
        join
    }

    /// Holds (`true`) or releases channel `c`; false if it already was in that state.
    pub fn hold(&mut self, c: ChannelId, hold: bool) -> bool {
        if hold {
            self.held_channels.insert(c)
        } else {
            self.held_channels.remove(&c)
        }
    }

    /// Whether channel `c` is held.
    pub fn is_held(&self, c: ChannelId) -> bool {
        self.held_channels.contains(&c)
    }

    /// Drops the head of channel `c` (a message lost on the way).
    pub fn discard(&mut self, c: ChannelId) -> Option<ChannelMsg> {
        self.pop(c)
    }

    /// Takes the head of channel `c`, dropping the channel once it is empty.
    fn pop(&mut self, c: ChannelId) -> Option<ChannelMsg> {
        let q = self.channels.get_mut(&c)?;
        let (_, msg) = q.pop_front()?;
        if q.is_empty() {
            self.channels.remove(&c);
        }
        Some(msg)
    }

    /// Whether channel `c` may deliver now: its receiver is up, it is not held, and its
    /// messages are in the receiver's socket. Messages that died with a receiver's
    /// process, or were sent while it was down, are not: they are in this ledger only,
    /// until both ends are up and the sender sends them again (`restart`).
    pub fn deliverable(&self, c: &ChannelId) -> bool {
        !self.down.contains(&c.1)
            && !self.held_channels.contains(c)
            && !self.lost.contains(c)
            && !self.paused.contains(&c.1)
            && !self.is_cut(c.0, c.1)
    }

    /// Pauses (`true`) or resumes `node`; false if it already was in that state.
    pub fn pause(&mut self, node: NodeId, pause: bool) -> bool {
        if pause {
            self.paused.insert(node)
        } else {
            self.paused.remove(&node)
        }
    }

    /// Whether `node` is paused.
    pub fn is_paused(&self, node: NodeId) -> bool {
        self.paused.contains(&node)
    }

    /// The paused nodes, by id.
    pub fn paused(&self) -> Vec<NodeId> {
        self.paused.iter().copied().collect()
    }

    /// Cuts `nodes` off from every other node, both ways (`Partition`).
    pub fn partition(&mut self, nodes: &[NodeId]) {
        self.cuts.push(nodes.iter().copied().collect());
    }

    /// Ends every partition; false if there was none.
    pub fn heal(&mut self) -> bool {
        !std::mem::take(&mut self.cuts).is_empty()
    }

    /// The nodes some partition cuts off, by id.
    pub fn cut_off(&self) -> Vec<NodeId> {
        let all: BTreeSet<NodeId> = self.cuts.iter().flatten().copied().collect();
        all.into_iter().collect()
    }

    /// Whether a partition cuts `node` off.
    pub fn in_partition(&self, node: NodeId) -> bool {
        self.cuts.iter().any(|c| c.contains(&node))
    }

    /// Every non-empty channel with its messages, head first, by channel.
    pub fn queued(&self) -> Vec<(ChannelId, Vec<ChannelMsg>)> {
        let mut v: Vec<(ChannelId, Vec<ChannelMsg>)> = self
            .channels
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(c, q)| (*c, q.iter().map(|m| m.1.clone()).collect()))
            .collect();
        v.sort_by_key(|(c, _)| *c);
        v
    }

    /// Whether `a` and `b` are on different sides of a partition.
    pub fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        self.cuts.iter().any(|c| c.contains(&a) != c.contains(&b))
    }

    /// Whether `node` takes steps: up, and not paused.
    pub fn runs(&self, node: NodeId) -> bool {
        !self.down.contains(&node) && !self.paused.contains(&node)
    }

    /// The nodes `node` can reach now: running, and not cut off from it, by id.
    pub fn reach(&self, node: NodeId) -> Vec<NodeId> {
        self.nodes().filter(|&m| m != node && self.runs(m) && !self.is_cut(node, m)).collect()
    }

    /// Whether the messages of channel `c` exist only in this ledger (they died with the
    /// receiver's process, or were sent while it was down) until they are sent again.
    pub fn is_lost(&self, c: ChannelId) -> bool {
        self.lost.contains(&c)
    }

    /// Whether `node` is down.
    pub fn is_down(&self, node: NodeId) -> bool {
        self.down.contains(&node)
    }

    /// The down nodes, by id.
    pub fn down(&self) -> Vec<NodeId> {
        self.down.iter().copied().collect()
    }

    /// `node`'s process died: what was queued to it died too (to be resent), and every
    /// running snapshot it had recorded lost that record. Returns those snapshots.
    pub fn crash(&mut self, node: NodeId) -> Vec<SnapshotId> {
        self.down.insert(node);
        self.paused.remove(&node);
        let senders: Vec<NodeId> = self.nodes().filter(|&s| s != node).collect();
        for s in senders {
            if !self.is_empty((s, node)) {
                self.lost.insert((s, node));
            }
        }
        let mut lost = Vec::new();
        for (k, snap) in self.snapshots.iter_mut().enumerate() {
            if snap.recorded.remove(&node).is_some() {
                lost.push(SnapshotId(k as u32));
            }
        }
        lost
    }

    /// `node` runs again (a new process). Returns, for every channel that touches it and
    /// has both ends up, (sender, receiver, generation of their link at the sender, the
    /// messages to send again on it): a sender must use that link, not a stale one to
    /// the dead process, and resends what died with a receiver (empty if nothing did).
    pub fn restart(&mut self, node: NodeId) -> Vec<(NodeId, NodeId, u32, Vec<ChannelMsg>)> {
        self.down.remove(&node);
        self.linked(node);
        let up = |x: &NodeId| !self.down.contains(x);
        let mut relink: BTreeSet<ChannelId> =
            self.nodes().filter(|&x| x != node && up(&x)).map(|x| (x, node)).collect();
        // Also what died with a peer that restarted while this node was down.
        relink.extend(self.lost.iter().copied().filter(|(a, b)| up(a) && up(b)));
        relink
            .into_iter()
            .map(|c| {
                let msgs = match self.lost.remove(&c) {
                    true => self
                        .channels
                        .get(&c)
                        .map_or(Vec::new(), |q| q.iter().map(|e| e.1.clone()).collect()),
                    false => Vec::new(),
                };
                (c.0, c.1, self.gens.get(&c).copied().unwrap_or(1), msgs)
            })
            .collect()
    }

    /// `node`'s process started and linked to every node that is up.
    pub fn linked(&mut self, node: NodeId) {
        let others: Vec<NodeId> = self.nodes().filter(|&x| x != node).collect();
        for x in others {
            // The new process links to the peers that are up; a down peer links to it
            // when that peer starts again.
            if self.down.contains(&x) {
                self.gens.insert((node, x), 0);
            } else {
                self.gens.insert((node, x), 1);
                *self.gens.entry((x, node)).or_default() += 1;
            }
        }
    }

    /// Whether `node` has recorded snapshot `k`.
    pub fn has_recorded(&self, node: NodeId, k: SnapshotId) -> bool {
        self.snapshots.get(k.0 as usize).is_some_and(|s| s.recorded.contains_key(&node))
    }

    /// The balance of `node`: all its money.
    pub fn balance(&self, node: NodeId) -> Amount {
        self.holdings.money(node).balance
    }

    /// Money held by transactions at `node`.
    pub fn held(&self, node: NodeId) -> Amount {
        self.holdings.money(node).held
    }

    /// A Send `from` → `to`: debits and enqueues a Transfer, or returns false (ERR_SEND)
    /// and changes nothing when the node account's money not held is short.
    pub fn send(&mut self, from: NodeId, to: NodeId, amount: Amount) -> bool {
        if !self.holdings.withdraw(from, amount) {
            return false;
        }
        self.enqueue((from, to), ChannelMsg::Transfer { amount });
        true
    }

    fn enqueue(&mut self, c: ChannelId, msg: ChannelMsg) {
        if self.down.contains(&c.1) {
            self.lost.insert(c); // its receiver has no process to hold it: resend later
        }
        self.enqueued += 1;
        self.channels.entry(c).or_default().push_back((self.enqueued, msg));
    }

    /// A node reported a commit-protocol step: the messages it sent, in order, and its
    /// money after it.
    pub fn apply_tx(&mut self, node: NodeId, sent: &[(NodeId, CommitMsg)], money: Money) {
        for (to, m) in sent {
            self.enqueue((node, *to), ChannelMsg::Commit(m.clone()));
        }
        self.holdings.set(node, money);
    }

    /// A driven transaction committed. Its messages are all delivered before any of its
    /// nodes runs another command, so to every later command its payments have moved
    /// their money, and nothing else changed.
    pub fn commit_driven(&mut self, spec: &TxSpec) {
        for p in spec.payments() {
            assert!(self.holdings.withdraw(p.from, p.amount), "a driven payer had it");
            self.holdings.deposit(p.to, p.amount);
            self.credited.insert((spec.tx, p.from, p.to));
        }
    }

    /// The head of channel `c`, if any.
    pub fn head(&self, c: ChannelId) -> Option<&ChannelMsg> {
        self.channels.get(&c).and_then(|q| q.front()).map(|e| &e.1)
    }

    /// Among channels `cs` into nodes that are up, the non-empty one whose head was
    /// enqueued first.
    pub fn oldest_head(&self, cs: &[ChannelId]) -> Option<ChannelId> {
        cs.iter()
            .filter(|c| self.deliverable(c))
            .filter_map(|c| self.channels.get(c).and_then(|q| q.front()).map(|e| (e.0, *c)))
            .min()
            .map(|(_, c)| c)
    }

    /// Whether a message of transaction `tx` is in any of the channels `cs`.
    pub fn carries(&self, cs: &[ChannelId], tx: TxnId) -> bool {
        cs.iter().filter_map(|c| self.channels.get(c)).flatten().any(|(_, m)| match m {
            ChannelMsg::Commit(t) => t.tx() == tx,
            _ => false,
        })
    }

    /// The money in all channels: Transfers, and each transaction's credit once, until
    /// its receiver applied it.
    pub fn money_in_channels(&self) -> Amount {
        let mut credits = self.credited.clone();
        let mut total = Amount::ZERO;
        for (&(from, to), q) in &self.channels {
            for (_, m) in q {
                let counted = match m {
                    ChannelMsg::Commit(t) => {
                        t.money().filter(|(tx, _)| credits.insert((*tx, from, to))).map(|(_, a)| a)
                    }
                    other => other.money(),
                };
                total = total.checked_add(counted.unwrap_or(Amount::ZERO)).expect("bounded");
            }
        }
        total
    }

    /// Whether channel `c` holds anything.
    pub fn is_empty(&self, c: ChannelId) -> bool {
        !self.channels.contains_key(&c)
    }

    /// Sources of the non-empty channels into `node`, by id.
    pub fn incoming(&self, node: NodeId) -> Vec<NodeId> {
        self.nodes()
            .filter(|&s| s != node && !self.is_empty((s, node)) && self.deliverable(&(s, node)))
            .collect()
    }

    /// Every non-empty channel into a node that is up, by source then destination.
    pub fn nonempty(&self) -> Vec<ChannelId> {
        let mut v: Vec<ChannelId> =
            self.channels.keys().copied().filter(|c| self.deliverable(c)).collect();
        v.sort_unstable();
        v
    }

    /// Takes the head of channel `c` = (s, d), following the marker rule at d.
    ///
    /// # Panics
    /// If the channel is empty: the master checks first.
    pub fn deliver(&mut self, c: ChannelId) -> Delivery {
        let msg = self.pop(c).expect("deliver from a non-empty channel");
        let mut records = false;
        if let ChannelMsg::Commit(CommitMsg::Credit { tx, .. }) = msg {
            self.credited.insert((tx, c.0, c.1));
        }
        if let ChannelMsg::Transfer { amount } = msg {
            self.holdings.deposit(c.1, amount);
        }
        if let ChannelMsg::Marker { snapshot } = msg {
            let snap = &mut self.snapshots[snapshot.0 as usize];
            snap.markers_in_flight -= 1;
            if !snap.recorded.contains_key(&c.1) {
                records = true;
                self.record(c.1, snapshot);
            }
            self.update_running(snapshot);
        }
        Delivery { msg, records }
    }

    /// Snapshot `node` starts: a new id; every node is a member; `node` records now.
    pub fn begin(&mut self, node: NodeId) -> SnapshotId {
        let id = SnapshotId(self.snapshots.len() as u32);
        self.snapshots
            .push(SnapshotLedger { members: self.nodes().collect(), ..SnapshotLedger::default() });
        self.running.insert(id);
        self.record(node, id);
        self.update_running(id);
        id
    }

    /// Snapshot `node` starts in live mode: a new id, every node a member. Markers are
    /// delivered as they arrive there, so the nodes, not the ledger, know when it is
    /// complete; the ledger counts it as recorded everywhere from the start.
    pub fn begin_live(&mut self) -> SnapshotId {
        let id = SnapshotId(self.snapshots.len() as u32);
        let members: BTreeSet<NodeId> = self.nodes().collect();
        let recorded = members.iter().map(|&n| (n, self.holdings.created_at(n))).collect();
        self.snapshots.push(SnapshotLedger { members, recorded, markers_in_flight: 0 });
        id
    }

    /// Live mode ended with every channel empty and every transaction ended: the nodes'
    /// money as they reported it, nothing in any channel, and every snapshot complete.
    pub fn resync(&mut self, states: &[(NodeId, Money)]) {
        for &(n, money) in states {
            self.holdings.set(n, money);
        }
        self.channels.clear();
        self.lost.clear();
        self.running.clear();
        for snap in &mut self.snapshots {
            for &n in &snap.members {
                let created = self.holdings.created_at(n);
                snap.recorded.entry(n).or_insert(created);
            }
            snap.markers_in_flight = 0;
        }
    }

    /// A held channel, if any (`Hold`).
    pub fn held_channel(&self) -> Option<ChannelId> {
        self.held_channels.iter().next().copied()
    }

    /// The members of snapshot `k`, by id.
    pub fn members(&self, k: SnapshotId) -> Vec<NodeId> {
        self.snapshots[k.0 as usize].members.iter().copied().collect()
    }

    /// Whether snapshot `k` is complete (every member recorded, no marker in a channel).
    pub fn is_complete(&self, k: SnapshotId) -> bool {
        self.snapshots[k.0 as usize].complete()
    }

    fn record(&mut self, node: NodeId, k: SnapshotId) {
        let created = self.holdings.created_at(node);
        self.snapshots[k.0 as usize].recorded.insert(node, created);
        let others: Vec<NodeId> = self.nodes().filter(|&x| x != node).collect();
        for x in others {
            self.push_marker((node, x), k);
        }
    }

    fn push_marker(&mut self, c: ChannelId, k: SnapshotId) {
        self.enqueue(c, ChannelMsg::Marker { snapshot: k });
        self.snapshots[k.0 as usize].markers_in_flight += 1;
    }

    fn update_running(&mut self, k: SnapshotId) {
        if self.snapshots[k.0 as usize].complete() {
            self.running.remove(&k);
        }
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
