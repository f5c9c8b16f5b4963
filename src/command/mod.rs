//! The command language of SPEC chapters 2–4: one [`Command`] per line.
//!
//! `parse` turns text into commands and reports what is wrong with a line; whether a
//! well-formed command makes sense now (a system running, a node existing) is the
//! master's business.

mod parse;

pub use parse::{parse_line, ParseError, ParseErrorKind};

use crate::ids::{Amount, NodeId, TxnId};
use crate::protocol::two_pc::CrashPoint;

/// One line of a command file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start the observer; a system exists from now on.
    StartMaster,
    /// Start a node process with an opening balance.
    CreateNode {
        /// The new node's id.
        id: NodeId,
        /// Its opening balance.
        amount: Amount,
    },
    /// `from` debits `amount` and enqueues a Transfer to `to`.
    Send {
        /// The sender.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// How much.
        amount: Amount,
    },
    /// `to` takes the head of the channel from `from`, or of a random non-empty one.
    Receive {
        /// The receiving node.
        to: NodeId,
        /// The channel's source, or `None` for a random non-empty incoming channel.
        from: Option<NodeId>,
    },
    /// Deliver heads of random non-empty channels until every channel is empty.
    ReceiveAll,
    /// The observer tells `node` to start a snapshot.
    BeginSnapshot {
        /// The initiator.
        node: NodeId,
    },
    /// Gather every complete snapshot begun since the previous `CollectState`.
    CollectState,
    /// Print what the last `CollectState` gathered.
    PrintSnapshot,
    /// End every process of the system.
    KillAll,
    /// List the commands on stderr.
    Help,
    /// A two-phase-commit transfer (SPEC chapter 5).
    Transfer {
        /// The debit node.
        from: NodeId,
        /// The credit node.
        to: NodeId,
        /// How much.
        amount: Amount,
        /// The coordinator when not the debit node (`via <node>`).
        via: Option<NodeId>,
        /// Start it and return at once (`nowait`).
        nowait: bool,
    },
    /// Print every node's balance.
    Balances,
    /// Print a transaction's state at every node of it.
    TxStatus {
        /// The transaction.
        tx: TxnId,
    },
    /// Hold the global state against all money created.
    Check,
    /// Print the transaction counters.
    Stats,
    /// SIGKILL a node's process now.
    Crash {
        /// The node.
        node: NodeId,
    },
    /// The node kills itself when it next reaches `point`.
    CrashAt {
        /// The node.
        node: NodeId,
        /// Where.
        point: CrashPoint,
    },
    /// Start a new process for a node on its log (SIGKILLing a running one first).
    Restart {
        /// The node.
        node: NodeId,
    },
    /// The channel `from` → `to` delivers nothing until `Release` (a delay).
    Hold {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
    },
    /// The held channel `from` → `to` delivers again.
    Release {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
    },
    /// The head of channel `from` → `to` is lost (two-phase-commit control messages only).
    Lose {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
    },
}

/// The text `help` prints.
pub const HELP: &str = "\
commands (one per line; blank lines and lines starting with # are ignored):
  StartMaster                      start the observer; a system exists from now on
  CreateNode <id> <amount>         start a node process with that balance
  Send <from> <to> <amount>        debit <from>, enqueue a Transfer on channel from->to
  Receive <to> [<from>]            deliver the head of channel from->to (random if omitted)
  ReceiveAll                       deliver random heads until every channel is empty
  BeginSnapshot <id>               node <id> starts a Chandy-Lamport snapshot
  CollectState                     the observer gathers the complete snapshots
  PrintSnapshot                    print what the last CollectState gathered
  KillAll                          end every process of the system
  Transfer <from> <to> <amount> [via <node>] [nowait]
                                   an atomic transfer by two-phase commit
  Balances                         every node's money (and what transactions hold)
  TxStatus T<n>                    a transaction's state at each of its nodes
  Check                            the global state against all money created
  Stats                            commits, aborts by reason, in-doubt, retransmissions
  Crash <node>                     SIGKILL the node's process now
  CrashAt <node> <point>           the node dies when it next reaches the point: before-vote,
                                   after-vote, before-decision, after-decision, mid-commit,
                                   before-ack
  Restart <node>                   a new process for the node, recovered from its log
  Hold <from> <to>                 the channel delivers nothing until Release (a delay)
  Release <from> <to>              the held channel delivers again
  Lose <from> <to>                 its head is lost (two-phase-commit control messages only)
  help                             this text";
