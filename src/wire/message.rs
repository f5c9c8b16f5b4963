//! The message enums, one per conversation, inside the top-level [`Message`].
//!
//! * [`Hello`] opens every link and names the sender and the run it belongs to.
//! * [`Control`] is a command the master (or the observer, on the master's behalf) gives
//!   a node; every command carries the node's next sequence number, and the node runs
//!   its commands strictly in that order whoever relays them.
//! * [`Report`] is a node's answer to one command, sent back on the link it came from.
//! * [`ChannelMsg`] is what one node sends another on their FIFO channel.
//! * [`ObserverRequest`] / [`ObserverReply`] are the master's conversation with the observer.
//!
//! postcard is not self-describing: append variants, never reorder them.

use crate::ids::{Amount, NodeId, SnapshotId};
use serde::{Deserialize, Serialize};

/// Who is at the other end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Peer {
    /// The master process.
    Master,
    /// The observer process.
    Observer,
    /// A node process.
    Node(NodeId),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Master => f.write_str("master"),
            Peer::Observer => f.write_str("observer"),
            Peer::Node(id) => write!(f, "node {id}"),
        }
    }
}

/// The first frame on every link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The run's random nonce: a connection that does not know it is refused.
    pub nonce: u64,
    /// Who is connecting.
    pub from: Peer,
}

/// A message between two nodes on their FIFO channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelMsg {
    /// Money moving from the sender to the receiver.
    Transfer {
        /// How much.
        amount: Amount,
    },
    /// The Chandy–Lamport marker of one snapshot.
    Marker {
        /// Which snapshot.
        snapshot: SnapshotId,
    },
}

/// A command to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// The first command of a new node: link to these peers and to the observer, then
    /// join (record at once) the snapshots still in progress.
    Setup {
        /// Every other node of the system, in creation order.
        peers: Vec<NodeId>,
        /// Snapshots in progress: the new node records its opening balance for each.
        join: Vec<SnapshotId>,
    },
    /// A node was created: expect its link, and for each snapshot in `join` that this
    /// node has recorded, send that snapshot's marker on the new channel.
    AddPeer {
        /// The new node.
        peer: NodeId,
        /// Snapshots the new node joined at creation.
        join: Vec<SnapshotId>,
    },
    /// Debit `amount` and enqueue a Transfer to `to`, or refuse if the balance is short.
    Send {
        /// The receiving node.
        to: NodeId,
        /// How much.
        amount: Amount,
    },
    /// Take the head message of the channel `from` → this node.
    Receive {
        /// The sending node.
        from: NodeId,
    },
    /// Record a new snapshot now (sent by the observer).
    BeginSnapshot {
        /// Its id.
        snapshot: SnapshotId,
    },
    /// Report what was recorded for these snapshots (sent by the observer).
    Collect {
        /// The snapshots asked for.
        snapshots: Vec<SnapshotId>,
    },
}

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
    /// The balance at the moment of recording.
    pub balance: Amount,
    /// Per incoming channel with money recorded in transit: (source, sum).
    pub channels: Vec<(NodeId, Amount)>,
    /// Incoming channels whose marker has not arrived yet.
    pub open: Vec<NodeId>,
}

/// A node's answer to one [`Control`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// `Setup` or `AddPeer` done.
    Ready,
    /// The Send was enqueued.
    Sent,
    /// The Send was refused: the balance is short. Nothing changed.
    ErrSend,
    /// The head message of the channel was taken.
    Received {
        /// The message.
        msg: ChannelMsg,
        /// The balance recorded, when this message made the node record (a first marker).
        recorded: Option<Amount>,
    },
    /// The node recorded a snapshot on `BeginSnapshot`, with this balance.
    Recorded {
        /// The balance recorded.
        balance: Amount,
    },
    /// The answer to `Collect`, one entry per snapshot asked for.
    Collected(Vec<LocalReport>),
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
    /// Gather these snapshots from every node; `seqs` gives each node's sequence number.
    Collect {
        /// (snapshot, its members).
        snapshots: Vec<(SnapshotId, Vec<NodeId>)>,
        /// (node, sequence number) for every node of the system.
        seqs: Vec<(NodeId, u64)>,
    },
}

/// The observer's answers, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObserverReply {
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

/// Everything that travels on a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First frame of every link.
    Hello(Hello),
    /// A command to a node, with the node's sequence number.
    Control {
        /// Position in the node's command order.
        seq: u64,
        /// The command.
        cmd: Control,
    },
    /// A node's answer to the command with this sequence number.
    Report {
        /// The command's sequence number.
        seq: u64,
        /// The answer.
        report: Report,
    },
    /// Node to node.
    Channel(ChannelMsg),
    /// Master to observer.
    ObserverRequest(ObserverRequest),
    /// Observer to master.
    ObserverReply(ObserverReply),
}
