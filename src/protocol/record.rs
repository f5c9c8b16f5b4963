//! The node's write-ahead-log record: plain money moves, and what each commit protocol
//! promises (forced) or notes (lazy). Replayed by `TxNode::recover`.
//!
//! postcard is not self-describing: append variants, never reorder them.

use crate::ids::{Amount, NodeId, TxnId};
use crate::wire::{Accept, Ballot, TxSpec};
use serde::{Deserialize, Serialize};

/// A record of a node's write-ahead log: money moves and every protocol's promises.
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
    /// A record of three-phase commit's own.
    ThreePc(ThreeRecord),
    /// A record of Paxos Commit's own.
    Paxos(PaxosRecord),
}

impl TxRecord {
    /// The transaction this record is about, if it is about one.
    pub fn tx(&self) -> Option<TxnId> {
        match *self {
            TxRecord::Opened { .. } | TxRecord::Sent { .. } | TxRecord::Deposited { .. } => None,
            TxRecord::Prepared { spec }
            | TxRecord::Decision { spec, .. }
            | TxRecord::Committed { spec } => Some(spec.tx),
            TxRecord::Aborted { tx } | TxRecord::End { tx } => Some(tx),
            TxRecord::ThreePc(
                ThreeRecord::Prepared { spec }
                | ThreeRecord::PreCommitting { spec }
                | ThreeRecord::PreCommitted { spec }
                | ThreeRecord::Decision { spec, .. },
            ) => Some(spec.tx),
            TxRecord::Paxos(
                PaxosRecord::Prepared { spec, .. }
                | PaxosRecord::Promise { spec, .. }
                | PaxosRecord::Accept { spec, .. }
                | PaxosRecord::Ballot { spec, .. }
                | PaxosRecord::Decision { spec, .. },
            ) => Some(spec.tx),
        }
    }
}

/// Three-phase commit's records; `Committed`, `Aborted` and `End` are the shared ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThreeRecord {
    /// A participant voted YES (forced before the vote).
    Prepared {
        /// The transfer.
        spec: TxSpec,
    },
    /// The coordinator has every YES (forced before the first `PreCommit`); its own leg,
    /// if it has one, is pre-committed with it.
    PreCommitting {
        /// The transfer.
        spec: TxSpec,
    },
    /// A participant is pre-committed (forced before its ack).
    PreCommitted {
        /// The transfer.
        spec: TxSpec,
    },
    /// The coordinator, or the termination protocol's leader, decided (forced when commit;
    /// a commit at the debit node is also its debit).
    Decision {
        /// The transfer.
        spec: TxSpec,
        /// Commit or abort.
        commit: bool,
    },
}

/// Paxos Commit's records; `Committed`, `Aborted` and `End` are the shared ones. Each
/// carries the transfer and its acceptors, so that any of them lets a restarted node lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaxosRecord {
    /// A participant voted YES (forced before its vote leaves; the debit side holds the
    /// amount).
    Prepared {
        /// The transfer.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
    },
    /// An acceptor promised to accept nothing below `bal` (forced before its 1b).
    Promise {
        /// The transfer.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
        /// The ballot.
        bal: Ballot,
    },
    /// An acceptor accepted a value (forced before its 2b).
    Accept {
        /// The transfer.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
        /// What it accepted.
        accept: Accept,
    },
    /// A leader took ballot `bal` (forced before its first message with it): a restarted
    /// node never takes a ballot twice.
    Ballot {
        /// The transfer.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
        /// The ballot.
        bal: Ballot,
    },
    /// The decision, as this node learnt it.
    Decision {
        /// The transfer.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
        /// Commit or abort.
        commit: bool,
    },
}
