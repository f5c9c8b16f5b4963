//! The command language of SPEC.md: one [`Command`] per line.
//!
//! `parse` turns text into commands and reports what is wrong with a line; whether a
//! well-formed command makes sense now (a system running, a node existing) is the
//! master's business.

mod parse;

pub use parse::{parse_line, ParseError, ParseErrorKind};

use crate::ids::{AccountName, Amount, NodeId, TxnId};
use crate::wire::CrashPoint;
use crate::wire::LoadKind;
use crate::wire::Protocol;

/// An account as a command names it: a node's own (node) account by the node's id, or a
/// named account (SPEC chapter 11).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccountRef {
    /// The node account of this node.
    Node(NodeId),
    /// A named account.
    Named(AccountName),
}

impl std::fmt::Display for AccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountRef::Node(id) => write!(f, "{id}"),
            AccountRef::Named(name) => write!(f, "{name}"),
        }
    }
}

/// The most parts a `Transaction` may have.
pub const MAX_PARTS: usize = 64;

/// One line of a command file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start the observer; a system exists from now on.
    StartMaster,
    /// Start a node process with an opening balance.
    CreateNode {
        /// The new node's id.
        id: NodeId,
        /// Its opening balance.
        amount: Amount,
        /// The host it runs on (`on <name>`, SPEC chapter 10); `None`: the next host
        /// in the hosts file's order (or this machine, without `--hosts`).
        on: Option<String>,
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
    /// An atomic transfer (SPEC chapters 5, 8 and 11).
    Transfer {
        /// The debit account.
        from: AccountRef,
        /// The credit account.
        to: AccountRef,
        /// How much.
        amount: Amount,
        /// The coordinator when not the debit node (`via <node>`).
        via: Option<NodeId>,
        /// Start it and return at once (`nowait`).
        nowait: bool,
        /// The commit protocol (`protocol 2pc|3pc|paxos`); `None` for the one `Protocol`
        /// set.
        protocol: Option<Protocol>,
    },
    /// Open a named account on a node, with new money (SPEC chapter 11).
    CreateAccount {
        /// Its name.
        name: AccountName,
        /// The node that holds it.
        node: NodeId,
        /// Its opening balance.
        amount: Amount,
    },
    /// One atomic transaction over 2 to [`MAX_PARTS`] accounts (SPEC chapter 11).
    Transaction {
        /// Each account (at most once) and its change, in the command's order; the
        /// changes sum to zero.
        changes: Vec<(AccountRef, i64)>,
        /// The coordinator when not the node of the first debited account (`via <node>`).
        via: Option<NodeId>,
        /// Start it and return at once (`nowait`).
        nowait: bool,
        /// The commit protocol; `None` for the one `Protocol` set.
        protocol: Option<Protocol>,
    },
    /// The commit protocol of later Transfers (and Loads).
    Protocol {
        /// The protocol.
        protocol: Protocol,
    },
    /// Cut these nodes off from all other nodes, both ways (SPEC chapter 8).
    Partition {
        /// The nodes cut off, by id, each once.
        nodes: Vec<NodeId>,
    },
    /// End every partition.
    Heal,
    /// Stop a node's process (SIGSTOP).
    Pause {
        /// The node.
        node: NodeId,
    },
    /// Continue a paused node's process (SIGCONT).
    Resume {
        /// The node.
        node: NodeId,
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
    /// The head of channel `from` → `to` is lost (commit-protocol control messages only).
    Lose {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
    },
    /// Enter or leave live mode (SPEC chapter 7).
    Live {
        /// Live or scripted.
        on: bool,
    },
    /// `count` random operations generated by the nodes themselves (live mode).
    Load {
        /// How many operations in all.
        count: u64,
        /// Which.
        kind: LoadKind,
        /// The parts of each transaction (`transactions <parts>`), else 2.
        parts: u8,
        /// The seed of the nodes' choices; `None` for one drawn from the run's seed.
        seed: Option<u64>,
        /// Return at once (`async`); `Wait` waits for it.
        background: bool,
    },
    /// Wait for the running `Load … async`, and print its summary.
    Wait,
}

/// Every command: its name, its usage line and what it does, in the order `help` lists
/// them. The parser shows the usage line when a line has the wrong arguments.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("StartMaster", "StartMaster", "start the observer; a system exists from now on"),
    (
        "CreateNode",
        "CreateNode <id> <amount> [on <host>]",
        "start a node process with that balance",
    ),
    ("Send", "Send <from> <to> <amount>", "debit <from>, enqueue a Transfer on channel from->to"),
    (
        "Receive",
        "Receive <to> [<from> [1]]",
        "deliver the head of channel from->to (random if omitted)",
    ),
    ("ReceiveAll", "ReceiveAll", "deliver random heads until every channel is empty"),
    ("BeginSnapshot", "BeginSnapshot <id>", "node <id> starts a Chandy-Lamport snapshot"),
    ("CollectState", "CollectState", "the observer gathers the complete snapshots"),
    ("PrintSnapshot", "PrintSnapshot", "print what the last CollectState gathered"),
    ("KillAll", "KillAll", "end every process of the system"),
    (
        "Transfer",
        "Transfer <from> <to> <amount> [via <node>] [nowait] [protocol 2pc|3pc|paxos]",
        "an atomic transfer between nodes or accounts\n(2pc unless Protocol says otherwise)",
    ),
    (
        "CreateAccount",
        "CreateAccount <name> <node> <amount>",
        "open a named account on the node, with that money",
    ),
    (
        "Transaction",
        "Transaction <account>:<change> ... [via <node>] [nowait] [protocol 2pc|3pc|paxos]",
        "one atomic transaction over 2 to 64 accounts,\nthe changes summing to zero",
    ),
    ("Protocol", "Protocol 2pc|3pc|paxos", "the commit protocol of later Transfers and Loads"),
    ("Balances", "Balances", "every node's money (and what transactions hold)"),
    ("TxStatus", "TxStatus T<n>", "a transaction's state at each of its nodes"),
    ("Check", "Check", "the global state against all money created"),
    ("Stats", "Stats", "commits, aborts by reason, in-doubt, retransmissions"),
    ("Crash", "Crash <node>", "SIGKILL the node's process now"),
    (
        "CrashAt",
        "CrashAt <node> <point>",
        "the node dies when it next reaches the point:\n\
         before-vote, after-vote, before-decision,\n\
         after-decision, mid-commit, before-ack,\n\
         before-precommit, mid-precommit, after-precommit (3pc),\n\
         after-accept (paxos)",
    ),
    ("Restart", "Restart <node>", "a new process for the node, recovered from its log"),
    ("Hold", "Hold <from> <to>", "the channel delivers nothing until Release (a delay)"),
    ("Release", "Release <from> <to>", "the held channel delivers again"),
    ("Lose", "Lose <from> <to>", "its head is lost (commit-protocol control messages only)"),
    ("Partition", "Partition <id> [<id>...]", "cut these nodes off from the others, both ways"),
    ("Heal", "Heal", "end every partition (what waited is delivered in order)"),
    ("Pause", "Pause <node>", "stop the node's process (SIGSTOP): it looks down"),
    ("Resume", "Resume <node>", "continue a paused node (SIGCONT)"),
    ("Live", "Live on|off", "live mode: every message is delivered as it arrives"),
    (
        "Load",
        "Load <count> [sends|transfers|mixed|transactions <parts>] [seed <n>] [async]",
        "random operations generated by the nodes (live mode)",
    ),
    ("Wait", "Wait", "wait for the running Load ... async"),
    ("help", "help", "this text"),
];

/// The usage line of command `name` (as [`COMMANDS`] gives it).
pub fn usage(name: &str) -> &'static str {
    COMMANDS.iter().find(|c| c.0 == name).map_or("", |c| c.1)
}

/// The text `help` prints: every command with its usage, one or two lines each.
pub fn help() -> String {
    let mut s = String::from(
        "commands (one per line; blank lines and lines starting with # are ignored):\n",
    );
    for (_, usage, what) in COMMANDS {
        let mut lines = what.lines();
        let first = lines.next().unwrap_or("");
        if usage.len() <= 32 {
            s.push_str(&format!("  {usage:<32} {first}\n"));
        } else {
            s.push_str(&format!("  {usage}\n  {:<32} {first}\n", ""));
        }
        for more in lines {
            s.push_str(&format!("  {:<32} {}\n", "", more.trim_start()));
        }
    }
    s.pop();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every command the parser knows has a usage line, and help lists each once.
    #[test]
    fn help_lists_every_command_with_its_usage() {
        let h = help();
        for (name, usage, _) in COMMANDS {
            assert!(usage.starts_with(name), "{usage}");
            assert_eq!(h.matches(&format!("  {usage}")).count(), 1, "{usage} in\n{h}");
        }
        assert_eq!(usage("Send"), "Send <from> <to> <amount>");
        assert_eq!(usage("Nope"), "");
        assert!(h.lines().all(|l| l.len() <= 100), "{h}");
    }
}
