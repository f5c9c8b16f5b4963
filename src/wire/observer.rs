//! What a node recorded for a snapshot, what the observer gathers, and the master's
//! conversation with the observer.

use crate::ids::{AccountName, Amount, NodeId, SnapshotId};
use serde::{Deserialize, Serialize};

/// What a node recorded for one snapshot, as reported to the observer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalReport {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// `None` when this node has not recorded the snapshot yet.
    pub recorded: Option<RecordedState>,
}

/// A node's recorded state in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedState {
    /// The balance at the moment of recording (all the node's accounts).
    pub balance: Amount,
    /// Each named account's balance at that moment, by name.
    pub accounts: Vec<(AccountName, Amount)>,
    /// Per incoming channel with money recorded in transit: (source, sum).
    pub channels: Vec<(NodeId, Amount)>,
    /// Incoming channels whose marker has not arrived yet.
    pub open: Vec<NodeId>,
}

/// One snapshot as gathered by the observer, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalSnapshot {
    /// Its id.
    pub snapshot: SnapshotId,
    /// (node, recorded balance), by node id.
    pub nodes: Vec<(NodeId, Amount)>,
    /// (source, destination, money in transit), every ordered pair, by source then destination.
    pub channels: Vec<(NodeId, NodeId, Amount)>,
    /// (account, recorded balance) of every named account, by name (part of its node's).
    pub accounts: Vec<(AccountName, Amount)>,
}

impl GlobalSnapshot {
    /// All the money it holds: node states plus channel states (`None` past `u64`).
    pub fn total(&self) -> Option<Amount> {
        let node = self.nodes.iter().map(|n| n.1);
        node.chain(self.channels.iter().map(|c| c.2))
            .try_fold(Amount::ZERO, |sum, a| sum.0.checked_add(a.0).map(Amount))
    }
}

/// A snapshot that could not be gathered, with the channels whose marker is still missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incomplete {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// (source, destination) of every channel still open, by source then destination.
    pub open: Vec<(NodeId, NodeId)>,
}

/// The master's requests to the observer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObserverRequest {
    /// Tell `node` to record snapshot `snapshot`, as its command number `seq`.
    Begin {
        /// The new snapshot's id.
        snapshot: SnapshotId,
        /// The initiator.
        node: NodeId,
        /// The initiator's sequence number for this command.
        seq: u64,
    },
    /// Node `node` restarted: before the next request, wait for its link from its
    /// `gen`-th process (an older link leads to a dead process).
    Relink {
        /// The restarted node.
        node: NodeId,
        /// Its process count.
        gen: u32,
    },
    /// Gather these snapshots from every node; `seqs` gives each node's sequence number.
    Collect {
        /// (snapshot, its members).
        snapshots: Vec<(SnapshotId, Vec<NodeId>)>,
        /// (node, sequence number) for every node of the system.
        seqs: Vec<(NodeId, u64)>,
        /// Live mode: each node answers once it has the whole of each snapshot.
        wait: bool,
    },
}

/// The observer's answers, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObserverReply {
    /// The observer holds the restarted node's new link.
    Relinked,
    /// The initiator recorded this balance.
    Started {
        /// The balance the initiator recorded.
        balance: Amount,
    },
    /// Every snapshot asked for, gathered.
    Collected(Vec<GlobalSnapshot>),
    /// At least one snapshot is not complete; nothing was gathered.
    NotComplete(Vec<Incomplete>),
}
