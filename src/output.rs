//! Every line that reaches stdout is formatted here (SPEC chapter 2).
//!
//! The master decides *when* a line is printed (in command order); this module decides
//! exactly *what* it says, byte for byte.

use crate::ids::{AccountName, Amount, NodeId, TxnId};
use crate::wire::{AbortReason, ChannelMsg, CommitMsg, Cost, GlobalSnapshot, Protocol, TxOutcome};
use crate::wire::{LoadStats, TxState};
use std::fmt::{Display, Write};

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

/// `Balances`' line for a named account: its money, and what transactions hold of it.
pub fn account_balance(name: &AccountName, balance: Amount, held: Amount) -> String {
    if held == Amount::ZERO {
        format!("account {name} = {balance}")
    } else {
        format!("account {name} = {balance} (held {held})")
    }
}

/// `Balances`' line for an account whose node cannot answer.
pub fn account_absent(name: &AccountName, paused: bool) -> String {
    format!("account {name} = {}", if paused { "paused" } else { "down" })
}

/// Which command started a transaction: the word its lines begin with (both share the
/// `T<n>` numbering, SPEC chapter 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxWord {
    /// `Transfer` (and a transaction of a load).
    #[default]
    Transfer,
    /// `Transaction`.
    Transaction,
}

impl TxWord {
    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            TxWord::Transfer => "Transfer",
            TxWord::Transaction => "Transaction",
        }
    }
}

/// What `Transfer` (or `Transaction`) prints: its decision, or `IN-DOUBT` when it has
/// none yet.
pub fn transfer(word: TxWord, tx: TxnId, outcome: Option<TxOutcome>) -> String {
    let word = word.as_str();
    match outcome {
        Some(TxOutcome::Committed) => format!("{word} {tx} COMMITTED"),
        Some(TxOutcome::Aborted(r)) => format!("{word} {tx} ABORTED {}", r.as_str()),
        None => format!("{word} {tx} IN-DOUBT"),
    }
}

/// What `Transfer … nowait` prints: `STARTED`, or its decision when it was decided at
/// once (the coordinator's own NO).
pub fn transfer_nowait(word: TxWord, tx: TxnId, decided: Option<TxOutcome>) -> String {
    match decided {
        Some(outcome) => transfer(word, tx, Some(outcome)),
        None => transfer_started(word, tx),
    }
}

/// What `Transfer … nowait` prints.
pub fn transfer_started(word: TxWord, tx: TxnId) -> String {
    format!("{} {tx} STARTED", word.as_str())
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
    if !snap.accounts.is_empty() {
        s.push_str("---Account states\n");
        for (name, balance) in &snap.accounts {
            let _ = writeln!(s, "account {name} = {balance}");
        }
    }
    s
}

/// A `Balances` line for a node that cannot answer: `down` or `paused`.
pub fn absent(node: NodeId, paused: bool) -> String {
    format!("node {node} = {}", if paused { "paused" } else { "down" })
}

/// How a transaction stands at the master, as `TxStatus` prints it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overall {
    /// Decided: its outcome.
    Decided(TxOutcome),
    /// Undecided while its coordinator cannot answer.
    InDoubt,
    /// Undecided.
    Pending,
}

impl Overall {
    /// The word `TxStatus` prints.
    pub fn word(self) -> &'static str {
        match self {
            Overall::Decided(TxOutcome::Committed) => "COMMITTED",
            Overall::Decided(TxOutcome::Aborted(_)) => "ABORTED",
            Overall::InDoubt => "IN-DOUBT",
            Overall::Pending => "PENDING",
        }
    }
}

/// A node's state in `TxStatus`: what it said, or why it could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeTx {
    /// It answered.
    State(TxState),
    /// It is down.
    Down,
    /// It is paused.
    Paused,
}

/// The `TxStatus` line: `T<n> <STATE> node <id>=<STATE> …`.
pub fn tx_status(tx: TxnId, overall: Overall, nodes: &[(NodeId, NodeTx)]) -> String {
    let mut line = format!("{tx} {}", overall.word());
    for (n, st) in nodes {
        let word = match st {
            NodeTx::State(s) => s.word(),
            NodeTx::Down => "DOWN",
            NodeTx::Paused => "PAUSED",
        };
        let _ = write!(line, " node {n}={word}");
    }
    line
}

/// What `Check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The money adds up.
    Ok {
        /// All money counted.
        total: Amount,
    },
    /// No verdict: a node is down or paused.
    Unavailable {
        /// The node.
        node: NodeId,
        /// Paused, not down.
        paused: bool,
    },
    /// A transaction committed at one node and aborted at another.
    Split {
        /// The transaction.
        tx: TxnId,
        /// The lowest node that committed it.
        committed: NodeId,
        /// The lowest node that aborted it.
        aborted: NodeId,
    },
    /// Money lost or created, or a node's money not what the ledger says: each reason.
    Failed(Vec<String>),
}

/// The `CHECK …` line.
pub fn check(v: &Verdict) -> String {
    match v {
        Verdict::Ok { total } => format!("CHECK OK total={total}"),
        Verdict::Unavailable { node, paused } => {
            let state = if *paused { "paused" } else { "down" };
            format!("CHECK UNAVAILABLE node {node} is {state}")
        }
        Verdict::Split { tx, committed, aborted } => format!(
            "CHECK FAILED atomicity {tx} committed at node {committed}, aborted at node {aborted}"
        ),
        Verdict::Failed(why) => format!("CHECK FAILED {}", why.join("; ")),
    }
}

/// The `Stats` lines: the counters, then per protocol that committed something, the
/// messages and forced writes per commit (two decimals), and with `parts` (a bank with
/// accounts or transactions, SPEC chapter 11) the mean participants per commit.
pub fn stats(
    counts: &crate::master::Counts,
    undecided: usize,
    protocols: &[(Protocol, u64, Cost)],
    parts: bool,
) -> Vec<String> {
    let mut lines = vec![format!("commits {}", counts.commits)];
    for r in AbortReason::ALL {
        lines.push(format!("aborts {} {}", r.as_str(), counts.aborts[r.index()]));
    }
    lines.push(format!("undecided {undecided}"));
    lines.push(format!("in-doubt {}", counts.in_doubt));
    lines.push(format!("retransmissions {}", counts.retransmissions));
    for &(p, committed, cost) in protocols {
        let per = |x: u64| x as f64 / committed as f64;
        let mut line = format!(
            "protocol {} committed={committed} messages={:.2} forced-writes={:.2}",
            p.word(),
            per(cost.messages),
            per(cost.forced)
        );
        if parts {
            let _ = write!(line, " parts={:.2}", per(counts.parts_by[p.index()]));
        }
        lines.push(line);
    }
    lines.extend(shares(counts, undecided));
    lines
}

/// `Stats`' last lines (SPEC chapter 12): each outcome's share of the transactions
/// counted (committed, aborted by each reason that occurred, and in-doubt: those with no
/// outcome yet), one decimal.
fn shares(counts: &crate::master::Counts, undecided: usize) -> Vec<String> {
    let total = counts.commits + counts.aborts.iter().sum::<u64>() + undecided as u64;
    let pct = |n: u64| if total == 0 { 0.0 } else { 100.0 * n as f64 / total as f64 };
    let mut lines = vec![format!("share committed {:.1}%", pct(counts.commits))];
    for r in AbortReason::ALL.into_iter().filter(|r| counts.aborts[r.index()] > 0) {
        lines.push(format!("share aborted {} {:.1}%", r.as_str(), pct(counts.aborts[r.index()])));
    }
    lines.push(format!("share in-doubt {:.1}%", pct(undecided as u64)));
    // After a live load: its committed transactions' latency.
    if let (Some(p50), Some(p99)) =
        (counts.latency.quantile_ms(0.5), counts.latency.quantile_ms(0.99))
    {
        lines.push(format!("latency p50={p50:.1} p99={p99:.1}"));
    }
    lines
}

/// The `LOAD …` line: what a load did, how long it took, how fast.
pub fn load(count: u64, s: &LoadStats, elapsed: std::time::Duration) -> String {
    let per_s = (s.done() as f64 / elapsed.as_secs_f64().max(1e-9)).round() as u64;
    format!(
        "LOAD {count} committed={} aborted={} err_send={} elapsed_ms={} per_s={per_s}",
        s.sent + s.committed,
        s.aborted.iter().sum::<u64>(),
        s.err_send,
        elapsed.as_millis()
    )
}

/// A rejected line, on stderr: `error: line N: <the line>: <why>`.
pub fn rejected(line: usize, text: &str, why: impl Display) -> String {
    format!("error: line {line}: {}: {why}", echo(text))
}

/// A line that does not parse, on stderr (the parse error names the line).
pub fn unparsed(e: impl Display) -> String {
    format!("error: {e}")
}

/// A node the running line waits on that cannot be reached, on stderr.
pub fn unreachable(line: usize, node: NodeId) -> String {
    format!("error: line {line}: node {node} unreachable")
}

/// The error that ended a run, on stderr.
pub fn fatal(why: impl Display) -> String {
    format!("error: {why}")
}

/// Standard output for a tool that prints a stream of its own lines (`bank-master log`),
/// buffered: the one other way to stdout besides the master's printer.
pub fn tool_stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
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
            accounts: Vec::new(),
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
        assert_eq!(
            transfer(TxWord::Transfer, t, Some(TxOutcome::Committed)),
            "Transfer T3 COMMITTED"
        );
        let short = Some(TxOutcome::Aborted(AbortReason::InsufficientFunds));
        assert_eq!(transfer(TxWord::Transfer, t, short), "Transfer T3 ABORTED insufficient-funds");
        let down = Some(TxOutcome::Aborted(AbortReason::NodeDown));
        assert_eq!(transfer(TxWord::Transfer, t, down), "Transfer T3 ABORTED node-down");
        assert_eq!(transfer(TxWord::Transfer, t, None), "Transfer T3 IN-DOUBT");
        assert_eq!(transfer_started(TxWord::Transfer, t), "Transfer T3 STARTED");
        assert_eq!(transfer_started(TxWord::Transaction, t), "Transaction T3 STARTED");
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
