//! Every line that reaches stdout is formatted here (SPEC chapter 2).
//!
//! The master decides *when* a line is printed (in command order); this module decides
//! exactly *what* it says, byte for byte.

use crate::ids::{Amount, NodeId, TxnId};
use crate::wire::{ChannelMsg, CommitMsg, GlobalSnapshot, TxOutcome};
use std::fmt::Write;

/// How channel lines draw their arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Arrow {
    /// `->`, as the expected-output files that circulate with the course.
    #[default]
    Ascii,
    /// `→` (U+2192), as the course text typesets it.
    Unicode,
}

impl Arrow {
    fn as_str(self) -> &'static str {
        match self {
            Arrow::Ascii => "->",
            Arrow::Unicode => "\u{2192}",
        }
    }
}

/// A command line as an error message echoes it: printable ASCII as it is, anything else
/// escaped (`\x1b`, `\u{fffd}`), so that no byte of a file can drive the terminal; and
/// cut after 80 characters, saying how much was left out.
pub fn echo(text: &str) -> String {
    echo_max(text, 80)
}

/// [`echo`] with room for `max` characters.
pub fn echo_max(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.char_indices() {
        let piece = match c {
            ' '..='~' => c.to_string(),
            '\t' => "\\t".to_string(),
            c if (c as u32) < 0x80 => format!("\\x{:02x}", c as u32),
            c => format!("\\u{{{:x}}}", c as u32),
        };
        if out.len() + piece.len() > max {
            let _ = write!(out, "... ({} more bytes)", text.len() - i);
            return out;
        }
        out.push_str(&piece);
    }
    out
}

/// The line `Send` prints when the balance is short.
pub const ERR_SEND: &str = "ERR_SEND";

/// What `Receive` prints for a message from `from`: `<from> <kind> <amount or -1>`.
pub fn received(from: NodeId, msg: &ChannelMsg) -> String {
    match msg {
        ChannelMsg::Transfer { amount } => format!("{from} Transfer {amount}"),
        ChannelMsg::Marker { .. } => format!("{from} SnapshotToken -1"),
        // The money of a transfer: the message that commits it at the credit side.
        ChannelMsg::Commit(CommitMsg::Credit { amount, .. }) => format!("{from} Commit {amount}"),
        ChannelMsg::Commit(m) => format!("{from} {} -1", m.kind()),
    }
}

/// One `Balances` line: all money the node owns, and what transactions hold of it.
pub fn balance(node: NodeId, balance: Amount, held: Amount) -> String {
    if held == Amount::ZERO {
        format!("node {node} = {balance}")
    } else {
        format!("node {node} = {balance} (held {held})")
    }
}

/// What `Transfer` prints: its decision, or `IN-DOUBT` when it has none yet.
pub fn transfer(tx: TxnId, outcome: Option<TxOutcome>) -> String {
    match outcome {
        Some(TxOutcome::Committed) => format!("Transfer {tx} COMMITTED"),
        Some(TxOutcome::Aborted(r)) => format!("Transfer {tx} ABORTED {}", r.as_str()),
        None => format!("Transfer {tx} IN-DOUBT"),
    }
}

/// What `Transfer … nowait` prints.
pub fn transfer_started(tx: TxnId) -> String {
    format!("Transfer {tx} STARTED")
}

/// What `BeginSnapshot` prints.
pub fn started(node: NodeId) -> String {
    format!("Started by Node {node}")
}

/// One `PrintSnapshot` block, every line ending in `\n`.
pub fn snapshot_block(snap: &GlobalSnapshot, arrow: Arrow) -> String {
    let mut s = String::from("---Node states\n");
    for (node, balance) in &snap.nodes {
        let _ = writeln!(s, "node {node} = {balance}");
    }
    s.push_str("---Channel states\n");
    for (from, to, amount) in &snap.channels {
        let _ = writeln!(s, "channel ({from} {} {to}) = {amount}", arrow.as_str());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SnapshotId;

    #[test]
    fn the_spec_example_block_is_exact() {
        let snap = GlobalSnapshot {
            snapshot: SnapshotId(0),
            nodes: vec![(NodeId(1), Amount(300)), (NodeId(2), Amount(1100))],
            channels: vec![(NodeId(1), NodeId(2), Amount(0)), (NodeId(2), NodeId(1), Amount(100))],
        };
        assert_eq!(
            snapshot_block(&snap, Arrow::Ascii),
            "---Node states\nnode 1 = 300\nnode 2 = 1100\n---Channel states\n\
             channel (1 -> 2) = 0\nchannel (2 -> 1) = 100\n"
        );
        assert!(snapshot_block(&snap, Arrow::Unicode).contains("channel (2 \u{2192} 1) = 100\n"));
    }

    // SPEC chapter 5's Transfer lines.
    #[test]
    fn transfer_lines_are_exact() {
        use crate::wire::AbortReason;
        let t = TxnId(3);
        assert_eq!(transfer(t, Some(TxOutcome::Committed)), "Transfer T3 COMMITTED");
        let short = Some(TxOutcome::Aborted(AbortReason::InsufficientFunds));
        assert_eq!(transfer(t, short), "Transfer T3 ABORTED insufficient-funds");
        let down = Some(TxOutcome::Aborted(AbortReason::NodeDown));
        assert_eq!(transfer(t, down), "Transfer T3 ABORTED node-down");
        assert_eq!(transfer(t, None), "Transfer T3 IN-DOUBT");
        assert_eq!(transfer_started(t), "Transfer T3 STARTED");
    }

    // What a rejected line echoes: escaped, cut, and unchanged when it is plain.
    #[test]
    fn echoes_are_escaped_and_cut() {
        assert_eq!(echo("Send 1 2 3"), "Send 1 2 3");
        assert_eq!(echo("a\u{1b}[2Jb\tc\u{fffd}"), "a\\x1b[2Jb\\tc\\u{fffd}");
        let long = "y".repeat(100);
        assert_eq!(echo(&long), format!("{}... (20 more bytes)", "y".repeat(80)));
        assert_eq!(echo_max(&"\u{7}".repeat(5), 8), "\\x07\\x07... (3 more bytes)");
    }

    #[test]
    fn receive_lines_are_exact() {
        assert_eq!(
            received(NodeId(1), &ChannelMsg::Transfer { amount: Amount(300) }),
            "1 Transfer 300"
        );
        assert_eq!(
            received(NodeId(12), &ChannelMsg::Marker { snapshot: SnapshotId(4) }),
            "12 SnapshotToken -1"
        );
        assert_eq!(started(NodeId(3)), "Started by Node 3");
    }
}
