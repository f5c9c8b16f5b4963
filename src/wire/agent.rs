//! The master's conversation with a host agent (SPEC chapter 10): one request at a
//! time, each answered, on a secured TCP link ([`crate::transport::tcp::Channel`]).

use crate::ids::{Amount, NodeId};
use serde::{Deserialize, Serialize};

/// A request to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToAgent {
    /// Opens a session for run `nonce`: the first request.
    Open {
        /// The run's nonce.
        nonce: u64,
    },
    /// Starts node `id`'s process: on a new log (`fresh`), or on the log it had (a
    /// `Restart`). `durable`: it forces every record before it tells anyone.
    Start {
        /// The node.
        id: NodeId,
        /// Its opening balance (used only on a fresh log).
        balance: Amount,
        /// A new, empty log.
        fresh: bool,
        /// Force plain Send records too.
        durable: bool,
    },
    /// SIGKILLs node `id`'s process and reaps it.
    Kill {
        /// The node.
        id: NodeId,
    },
    /// SIGSTOPs (`stop`) or SIGCONTs node `id`'s process.
    Signal {
        /// The node.
        id: NodeId,
        /// Stop, or continue.
        stop: bool,
    },
}

/// An agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromAgent {
    /// The session is open; the agent's host name, for logs.
    Opened {
        /// The agent's host name.
        host: String,
    },
    /// Node `id` runs and listens on `addr`.
    Started {
        /// The node.
        id: NodeId,
        /// Its `address:port`.
        addr: String,
    },
    /// Done (Kill, Signal).
    Done,
    /// The request failed.
    Failed {
        /// Why.
        why: String,
    },
}
