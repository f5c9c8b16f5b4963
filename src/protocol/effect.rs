//! The outputs of the pure machines, carried out by the node driver in the order given.

use crate::ids::NodeId;
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
}
