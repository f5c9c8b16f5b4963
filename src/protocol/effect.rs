//! The outputs of the pure machines, carried out by the node driver in the order given:
//! [`Effect`] for a whole node, [`TxEffect`] for the commit protocols (which `Branch`
//! turns into node effects).

use crate::ids::{Amount, NodeId, TxnId};
use crate::protocol::record::TxRecord;
use crate::wire::{ChannelMsg, CrashPoint, TxMsg, TxOutcome as Outcome};

/// Something a machine needs done outside itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Enqueue `msg` on the FIFO channel from this node to `to`, after everything
    /// enqueued before it.
    Send {
        /// The destination node.
        to: NodeId,
        /// The message.
        msg: ChannelMsg,
    },
    /// Append `rec` to the write-ahead log; when `force`, make it durable before any later
    /// effect leaves the node.
    Log {
        /// The record.
        rec: TxRecord,
        /// Durable before the next effect.
        force: bool,
    },
    /// A crash point was reached (`CrashAt` kills the node here).
    Point(CrashPoint),
    /// This node, coordinating `tx`, decided.
    Decided {
        /// The transaction.
        tx: TxnId,
        /// The decision.
        outcome: Outcome,
    },
    /// See [`TxEffect::Dropped`].
    Dropped {
        /// The transaction.
        tx: TxnId,
        /// The money its credit carried.
        amount: Amount,
    },
}

/// What a commit protocol needs done, in this order.
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
    /// The credit of a transfer this node aborted arrived, and its money is gone: a
    /// three-phase commit that split (its coordinator committed). Nothing is done; the
    /// effect tells the master, whose trace shows where the money went.
    Dropped {
        /// The transaction.
        tx: TxnId,
        /// The money its credit carried.
        amount: Amount,
    },
}
