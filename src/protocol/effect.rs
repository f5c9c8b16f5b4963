//! The outputs of the pure machines, carried out by the node driver in the order given.

use crate::ids::{NodeId, TxnId};
use crate::protocol::two_pc::{CrashPoint, Outcome, TxRecord};
use crate::wire::ChannelMsg;

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
}
