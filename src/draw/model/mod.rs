//! The run a trace describes, as one model every picture is drawn from: its nodes, the
//! events on each node in order, every message paired with its delivery or loss, and
//! every snapshot's records and recorded channel messages. [`build`] reads it from a
//! trace (in `trace.rs`); the renderers only read it.

mod trace;

use std::collections::BTreeMap;
pub use trace::build;

/// A colour family: what a message is, for the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// A plain `Send`'s money.
    Transfer,
    /// A Chandy–Lamport marker.
    Marker,
    /// A committed transfer's money moving (`Credit`).
    Credit,
    /// Two-phase commit control messages.
    TwoPc,
    /// Three-phase commit control messages.
    ThreePc,
    /// Paxos Commit control messages.
    Paxos,
}

impl Class {
    /// Every class, in legend order.
    pub const ALL: [Class; 6] =
        [Class::Transfer, Class::Marker, Class::Credit, Class::TwoPc, Class::ThreePc, Class::Paxos];

    /// The word in CSS classes and the legend.
    pub fn word(self) -> &'static str {
        match self {
            Class::Transfer => "transfer",
            Class::Marker => "marker",
            Class::Credit => "credit",
            Class::TwoPc => "twopc",
            Class::ThreePc => "threepc",
            Class::Paxos => "paxos",
        }
    }
}

/// How a message's life ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Delivered by this event (an index into [`Run::events`]).
    Delivered(usize),
    /// Lost from the channel by this event.
    Lost(usize),
    /// Still in the channel when the trace ends.
    InFlight,
}

/// One message on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Sender (an index into [`Run::nodes`]).
    pub from: usize,
    /// Receiver.
    pub to: usize,
    /// Its place on the channel: the k-th message sent on `from → to`, from 0.
    pub seq: u64,
    /// The trace's `kind`.
    pub kind: String,
    /// The transaction, for commit messages.
    pub tx: Option<u64>,
    /// The money it carries (Transfer, Credit).
    pub amount: Option<u64>,
    /// The snapshot, for markers.
    pub snapshot: Option<u64>,
    /// Colour family.
    pub class: Class,
    /// The send event.
    pub send: usize,
    /// Its delivery, loss, or neither.
    pub end: End,
}

impl Message {
    /// The short label drawn beside the arrow.
    pub fn label(&self) -> String {
        match (self.kind.as_str(), self.amount, self.snapshot, self.tx) {
            ("Transfer", Some(a), _, _) => format!("${a}"),
            ("Marker", _, Some(s), _) => format!("S{s}"),
            ("Credit", Some(a), _, Some(t)) => format!("Credit T{t} ${a}"),
            (k, _, _, Some(t)) => format!("{k} T{t}"),
            (k, _, _, _) => k.to_string(),
        }
    }

    /// The money the message moves from sender to receiver.
    pub fn money(&self) -> Option<u64> {
        match self.kind.as_str() {
            "Transfer" | "Credit" => self.amount,
            _ => None,
        }
    }
}

/// What happened at an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// The node was created with a balance.
    Create {
        /// Opening balance.
        balance: u64,
    },
    /// A message was sent (an index into [`Run::messages`]).
    Send(usize),
    /// A message was delivered.
    Deliver(usize),
    /// A message was lost from the channel into this node (drawn on the receiver).
    Lose(usize),
    /// A `Send` was refused.
    ErrSend {
        /// Receiver (an index into [`Run::nodes`]).
        to: usize,
        /// The amount asked for.
        amount: u64,
    },
    /// The node's process died.
    Crash,
    /// The node's process restarted from its log.
    Restart,
    /// The node's process was stopped.
    Pause,
    /// The node's process was continued.
    Resume,
    /// A credit came after this node had aborted its transfer (a three-phase commit
    /// split): its money is gone.
    Drop {
        /// The transaction.
        tx: u64,
        /// The money lost.
        amount: u64,
    },
    /// The money held for unfinished transactions changed.
    Held {
        /// What is held now.
        amount: u64,
    },
    /// The node recorded its state for a snapshot.
    Record {
        /// The snapshot.
        snapshot: u64,
        /// The balance recorded.
        balance: u64,
    },
    /// `Partition` cut these nodes (indices) off from the rest.
    Partition {
        /// The nodes cut off.
        cut: Vec<usize>,
    },
    /// `Heal` ended every partition.
    Heal,
}

/// One event of a run, in trace order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The node it happened on, or `None` for Partition and Heal (every node).
    pub node: Option<usize>,
    /// What happened.
    pub what: What,
    /// The trace line (from 1).
    pub line: usize,
    /// The row it is drawn in: after the node's previous event and, for a delivery,
    /// after its send (a Lamport clock that ticks by one row).
    pub row: u32,
}

/// One snapshot of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its id.
    pub id: u64,
    /// Each node's record event, by node index.
    pub records: BTreeMap<usize, usize>,
    /// The money messages it recorded in channels: sent before the sender recorded,
    /// delivered after the receiver recorded.
    pub recorded: Vec<usize>,
    /// Whether `CollectState` gathered it.
    pub collected: bool,
}

/// One `StartMaster`'s system, from its `start` to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    /// The trace line of its `start` (0 when the trace has none).
    pub start_line: usize,
    /// Node ids, ascending: column order.
    pub nodes: Vec<u32>,
    /// Events in trace order.
    pub events: Vec<Event>,
    /// Messages in send order.
    pub messages: Vec<Message>,
    /// Snapshots by id.
    pub snapshots: Vec<Snapshot>,
    /// Rows used (the last event's row + 1).
    pub rows: u32,
}

/// Every run of a trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Runs in order.
    pub runs: Vec<Run>,
    /// Events in the trace.
    pub events: usize,
}
