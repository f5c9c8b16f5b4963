//! What one node sends another on their FIFO channel: money, markers, and the commit
//! protocols' messages.

use super::commit_msg::CommitMsg;
use crate::ids::{Amount, SnapshotId};
use serde::{Deserialize, Serialize};

/// A message between two nodes on their FIFO channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// A commit protocol's message (SPEC chapters 5 and 8).
    Commit(CommitMsg),
}

impl ChannelMsg {
    /// The money this message carries into its receiver's balance, if any: a Transfer's
    /// amount, or a credit's (`CommitMsg::Credit`).
    pub fn money(&self) -> Option<Amount> {
        match self {
            ChannelMsg::Transfer { amount } => Some(*amount),
            ChannelMsg::Marker { .. } => None,
            ChannelMsg::Commit(m) => m.money().map(|(_, a)| a),
        }
    }
}

impl From<CommitMsg> for ChannelMsg {
    fn from(m: CommitMsg) -> ChannelMsg {
        ChannelMsg::Commit(m)
    }
}
