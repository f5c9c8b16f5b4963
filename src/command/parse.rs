//! Text to [`Command`], with the line number and a reason for every rejected line.
//!
//! A table, `PARSERS`, maps each command's name to the small function that reads its
//! arguments; the checks they share (how many, ids, amounts, channels) are methods of
//! `Args`. Whether a well-formed command makes sense now is the master's business.
//! Every line a run reads comes here: the master's file and terminal, the live page,
//! the one-process replay.

use super::{AccountRef, Command, MAX_PARTS};
use crate::ids::{AccountName, Amount, BadName, NodeId, TxnId};
use crate::output::echo;
use crate::wire::CrashPoint;
use crate::wire::LoadKind;
use crate::wire::Protocol;
use std::fmt;

/// A word of a rejected line as an error message shows it: escaped and cut short.
fn echo_word(word: &str) -> String {
    crate::output::echo_max(word, 24)
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The first word is not a command (commands are case-sensitive).
    UnknownCommand(String),
    /// The command takes a different number of arguments.
    WrongArgCount {
        /// What the command takes, e.g. "2" or "1 or 2".
        expected: &'static str,
        /// What the line has.
        got: usize,
        /// The command's usage line.
        usage: &'static str,
    },
    /// `TxStatus` names a transaction without its `T`.
    MissingT(String),
    /// An argument is not an integer.
    NotAnInteger {
        /// Which argument ("id", "amount", …).
        what: &'static str,
        /// The text.
        arg: String,
    },
    /// An argument is a negative integer.
    Negative {
        /// Which argument.
        what: &'static str,
        /// The text.
        arg: String,
    },
    /// An integer too large for its kind.
    TooLarge {
        /// Which argument.
        what: &'static str,
        /// The text.
        arg: String,
        /// The largest value allowed.
        max: u64,
    },
    /// A node named as both ends of a channel.
    SelfChannel(NodeId),
    /// A word the command does not take there.
    UnexpectedWord {
        /// The word.
        word: String,
        /// What the command takes there.
        expected: &'static str,
    },
    /// `CrashAt` names no such point.
    UnknownCrashPoint(String),
    /// `protocol` or `Protocol` names no such protocol.
    UnknownProtocol(String),
    /// A node listed twice (`Partition`).
    Duplicate(NodeId),
    /// A word that should name an account does not.
    BadAccountName {
        /// The word.
        word: String,
        /// Why it is no name.
        why: BadName,
    },
    /// An account named twice in one command.
    DuplicateAccount(String),
    /// A transaction's part is not `<account>:<change>`.
    NotAChange(String),
    /// A transaction with too few or too many parts.
    PartCount(usize),
    /// A transaction's changes do not sum to zero.
    Unbalanced(i128),
    /// `Receive <to> <from> <k>` with `k` other than 1: the channels are FIFO.
    NotOldest(u64),
}

/// A rejected line: its number, its text and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// The line, trimmed.
    pub text: String,
    /// Why it was rejected.
    pub kind: ParseErrorKind,
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::UnknownCommand(c) => write!(
                f,
                "unknown command \"{}\" (commands are case-sensitive; try help)",
                echo_word(c)
            ),
            ParseErrorKind::WrongArgCount { expected, got, usage } => {
                let s = if *expected == "1" { "" } else { "s" };
                write!(f, "takes {expected} argument{s}, got {got} (usage: {usage})")
            }
            ParseErrorKind::MissingT(arg) => write!(
                f,
                "transaction \"{}\" has no T: transactions are written T<n>, as in T{}",
                echo_word(arg),
                if arg.bytes().all(|b| b.is_ascii_digit()) { arg.as_str() } else { "1" }
            ),
            ParseErrorKind::NotAnInteger { what, arg } => {
                write!(f, "{what} \"{}\" is not an integer", echo_word(arg))
            }
            ParseErrorKind::Negative { what, arg } => {
                write!(f, "{what} {} is negative", echo_word(arg))
            }
            ParseErrorKind::TooLarge { what, arg, max } if arg.starts_with('-') => {
                write!(f, "{what} {} is below -{max}", echo_word(arg))
            }
            ParseErrorKind::TooLarge { what, arg, max } => {
                write!(f, "{what} {} is larger than {max}", echo_word(arg))
            }
            ParseErrorKind::SelfChannel(id) => {
                write!(f, "node {id} has no channel to itself")
            }
            ParseErrorKind::UnknownCrashPoint(p) => {
                let all: Vec<&str> = CrashPoint::EVERY.iter().map(|p| p.name()).collect();
                write!(f, "no crash point \"{}\" (points: {})", echo_word(p), all.join(", "))
            }
            ParseErrorKind::UnknownProtocol(p) => {
                write!(f, "no protocol \"{}\" (protocols: 2pc, 3pc, paxos)", echo_word(p))
            }
            ParseErrorKind::Duplicate(id) => write!(f, "node {id} is listed twice"),
            ParseErrorKind::BadAccountName { word, why } => {
                write!(f, "\"{}\" is no account name: {why}", echo_word(word))
            }
            ParseErrorKind::DuplicateAccount(a) => {
                write!(f, "account {} is named twice", echo_word(a))
            }
            ParseErrorKind::NotAChange(w) => write!(
                f,
                "\"{}\" is not <account>:<change> (as in ACC001:-300 or 2:+100)",
                echo_word(w)
            ),
            ParseErrorKind::NotOldest(k) => write!(
                f,
                "message {k} of a channel: channels are FIFO here, so only the oldest (1) \
                 can be received (the k-th needs --channels unordered)"
            ),
            ParseErrorKind::PartCount(n) => {
                write!(f, "a transaction has 2 to {MAX_PARTS} parts, this one {n}")
            }
            ParseErrorKind::Unbalanced(sum) => {
                write!(f, "the changes sum to {sum}, not 0: money is moved, never made")
            }
            ParseErrorKind::UnexpectedWord { word, expected } => {
                write!(f, "unexpected \"{}\" (expected: {expected})", echo_word(word))
            }
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, echo(&self.text), self.kind)
    }
}

impl std::error::Error for ParseError {}

/// Parses line `line` (1-based) of a command file. `Ok(None)` for blank and `#` lines.
///
/// # Errors
/// A [`ParseError`] naming the line and the reason.
pub fn parse_line(line: usize, raw: &str) -> Result<Option<Command>, ParseError> {
    let text = raw.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut words = text.split_whitespace();
    let name = words.next().expect("a non-blank line has a first word");
    let args = Args { name, words: words.collect() };
    let parsed = match PARSERS.iter().find(|(known, _)| *known == name) {
        Some((_, parse)) => parse(&args),
        None => Err(ParseErrorKind::UnknownCommand(name.to_string())),
    };
    parsed.map(Some).map_err(|kind| ParseError { line, text: text.to_string(), kind })
}

/// One command's parser: the words after its name to the command, or why not.
type Parse = fn(&Args) -> Result<Command, ParseErrorKind>;

/// Every command the parser knows, with the function that reads its arguments. A new
/// command is one function below and one line here, plus its usage and help line in
/// [`super::COMMANDS`] (a test checks that the two tables name the same commands).
const PARSERS: &[(&str, Parse)] = &[
    ("StartMaster", |a| a.bare(Command::StartMaster)),
    ("CreateNode", create_node),
    ("Send", send),
    ("Receive", receive),
    ("ReceiveAll", |a| a.bare(Command::ReceiveAll)),
    ("BeginSnapshot", |a| a.node().map(|node| Command::BeginSnapshot { node })),
    ("CollectState", |a| a.bare(Command::CollectState)),
    ("PrintSnapshot", |a| a.bare(Command::PrintSnapshot)),
    ("KillAll", |a| a.bare(Command::KillAll)),
    ("help", |a| a.bare(Command::Help)),
    ("Transfer", transfer),
    ("CreateAccount", create_account),
    ("Transaction", transaction),
    ("Protocol", protocol),
    ("Partition", partition),
    ("Heal", |a| a.bare(Command::Heal)),
    ("Pause", |a| a.node().map(|node| Command::Pause { node })),
    ("Resume", |a| a.node().map(|node| Command::Resume { node })),
    ("Balances", |a| a.bare(Command::Balances)),
    ("Hold", |a| a.channel().map(|(from, to)| Command::Hold { from, to })),
    ("Release", |a| a.channel().map(|(from, to)| Command::Release { from, to })),
    ("Lose", |a| a.channel().map(|(from, to)| Command::Lose { from, to })),
    ("Crash", |a| a.node().map(|node| Command::Crash { node })),
    ("Restart", |a| a.node().map(|node| Command::Restart { node })),
    ("CrashAt", crash_at),
    ("Check", |a| a.bare(Command::Check)),
    ("Wait", |a| a.bare(Command::Wait)),
    ("Live", live),
    ("Load", load),
    ("Stats", |a| a.bare(Command::Stats)),
    ("TxStatus", tx_status),
];

/// The words after a command's name, and the checks many commands make of them. Each
/// check fails with the kind of error the line gets, so a parser is a chain of `?`s in
/// the order its errors should be found.
struct Args<'a> {
    /// The command's name: a wrong argument count shows its usage.
    name: &'a str,
    words: Vec<&'a str>,
}

impl Args<'_> {
    /// Fails with the command's usage unless `ok`; `expected` says what it takes ("no",
    /// "1", "2 or 4", …).
    fn arity(&self, expected: &'static str, ok: bool) -> Result<(), ParseErrorKind> {
        if ok {
            return Ok(());
        }
        let usage = super::usage(self.name);
        Err(ParseErrorKind::WrongArgCount { expected, got: self.words.len(), usage })
    }

    /// Argument `i` as a node id.
    fn id(&self, i: usize) -> Result<NodeId, ParseErrorKind> {
        parse_int(self.words[i], "id", u32::MAX as u64).map(|v| NodeId(v as u32))
    }

    /// Argument `i` as an amount of money.
    fn amount(&self, i: usize) -> Result<Amount, ParseErrorKind> {
        parse_int(self.words[i], "amount", Amount::MAX.0).map(Amount)
    }

    /// A command of no arguments.
    fn bare(&self, cmd: Command) -> Result<Command, ParseErrorKind> {
        self.arity("no", self.words.is_empty()).map(|()| cmd)
    }

    /// A command of one argument, a node.
    fn node(&self) -> Result<NodeId, ParseErrorKind> {
        self.arity("1", self.words.len() == 1)?;
        self.id(0)
    }

    /// A command of two arguments, the ends of a channel: `<from> <to>`.
    fn channel(&self) -> Result<(NodeId, NodeId), ParseErrorKind> {
        self.arity("2", self.words.len() == 2)?;
        let (from, to) = (self.id(0)?, self.id(1)?);
        not_a_loop(from, to)?;
        Ok((from, to))
    }

    /// Argument `i` as an account: a node's id (a word starting with a digit) or a name.
    fn account(&self, i: usize) -> Result<AccountRef, ParseErrorKind> {
        account_word(self.words[i])
    }

    /// The first three arguments as `<from> <to> <amount>`: money moving between two
    /// nodes (`Send`; the caller has checked the count).
    fn movement(&self) -> Result<(NodeId, NodeId, Amount), ParseErrorKind> {
        let (from, to, amount) = (self.id(0)?, self.id(1)?, self.amount(2)?);
        not_a_loop(from, to)?;
        Ok((from, to, amount))
    }

    /// `word` is not what the command takes at this place; `expected` lists what it does.
    fn unexpected(word: &str, expected: &'static str) -> ParseErrorKind {
        ParseErrorKind::UnexpectedWord { word: word.to_string(), expected }
    }
}

/// A node has no channel to itself.
fn not_a_loop(from: NodeId, to: NodeId) -> Result<(), ParseErrorKind> {
    if from == to {
        return Err(ParseErrorKind::SelfChannel(from));
    }
    Ok(())
}
fn create_node(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("2 or 4", a.words.len() == 2 || a.words.len() == 4)?;
    let on = match a.words.get(2..) {
        Some([on, host]) if *on == "on" => Some(host.to_string()),
        Some([word, _]) => return Err(Args::unexpected(word, "on <host>")),
        _ => None,
    };
    Ok(Command::CreateNode { id: a.id(0)?, amount: a.amount(1)?, on })
}

fn send(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("3", a.words.len() == 3)?;
    let (from, to, amount) = a.movement()?;
    Ok(Command::Send { from, to, amount })
}

fn receive(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("1 to 3", (1..=3).contains(&a.words.len()))?;
    let to = a.id(0)?;
    let from = if a.words.len() >= 2 { Some(a.id(1)?) } else { None };
    if let Some(from) = from {
        not_a_loop(to, from)?;
    }
    // SPEC chapter 13: `<k>`, the k-th message queued (1 the oldest); on FIFO channels
    // only the oldest.
    if a.words.len() == 3 {
        let k = parse_int(a.words[2], "message", u64::MAX)?;
        if k != 1 {
            return Err(ParseErrorKind::NotOldest(k));
        }
    }
    Ok(Command::Receive { to, from })
}

fn transfer(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("3 to 8", (3..=8).contains(&a.words.len()))?;
    let (from, to, amount) = (a.account(0)?, a.account(1)?, a.amount(2)?);
    match (&from, &to) {
        (AccountRef::Node(x), AccountRef::Node(y)) => not_a_loop(*x, *y)?,
        (x, y) if x == y => return Err(ParseErrorKind::DuplicateAccount(x.to_string())),
        _ => {}
    }
    let CommitOptions { via, nowait, protocol } = commit_options(a, 3)?;
    Ok(Command::Transfer { from, to, amount, via, nowait, protocol })
}

fn create_account(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("3", a.words.len() == 3)?;
    let name = AccountName::parse(a.words[0])
        .map_err(|why| ParseErrorKind::BadAccountName { word: a.words[0].to_string(), why })?;
    Ok(Command::CreateAccount { name, node: a.id(1)?, amount: a.amount(2)? })
}

/// `Transaction <account>:<change> … [options]`: the parts run up to the first option.
fn transaction(a: &Args) -> Result<Command, ParseErrorKind> {
    let options = ["via", "nowait", "protocol"];
    let n = a.words.iter().position(|w| options.contains(w)).unwrap_or(a.words.len());
    let mut changes: Vec<(AccountRef, i64)> = Vec::with_capacity(n);
    for word in &a.words[..n] {
        let (account, change) =
            word.split_once(':').ok_or_else(|| ParseErrorKind::NotAChange(word.to_string()))?;
        let account = account_word(account)?;
        if changes.iter().any(|c| c.0 == account) {
            return Err(ParseErrorKind::DuplicateAccount(account.to_string()));
        }
        changes.push((account, parse_change(change)?));
    }
    if !(2..=MAX_PARTS).contains(&changes.len()) {
        return Err(ParseErrorKind::PartCount(changes.len()));
    }
    let sum: i128 = changes.iter().map(|c| i128::from(c.1)).sum();
    if sum != 0 {
        return Err(ParseErrorKind::Unbalanced(sum));
    }
    let CommitOptions { via, nowait, protocol } = commit_options(a, n)?;
    Ok(Command::Transaction { changes, via, nowait, protocol })
}

/// An account word: a node's id when it starts with a digit, else a name.
fn account_word(word: &str) -> Result<AccountRef, ParseErrorKind> {
    if word.starts_with(|c: char| c.is_ascii_digit()) {
        return parse_int(word, "id", u32::MAX as u64).map(|v| AccountRef::Node(NodeId(v as u32)));
    }
    AccountName::parse(word)
        .map(AccountRef::Named)
        .map_err(|why| ParseErrorKind::BadAccountName { word: word.to_string(), why })
}

/// A signed change: `+100`, `-300` or `100`, at most [`Amount::MAX`] either way.
fn parse_change(word: &str) -> Result<i64, ParseErrorKind> {
    let (negative, digits) = match word.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, word.strip_prefix('+').unwrap_or(word)),
    };
    if digits.starts_with(['+', '-']) {
        return Err(ParseErrorKind::NotAnInteger { what: "change", arg: word.to_string() });
    }
    let v = parse_int(digits, "change", Amount::MAX.0).map_err(|e| match e {
        ParseErrorKind::NotAnInteger { what, .. } => {
            ParseErrorKind::NotAnInteger { what, arg: word.to_string() }
        }
        ParseErrorKind::TooLarge { what, max, .. } => {
            ParseErrorKind::TooLarge { what, arg: word.to_string(), max }
        }
        other => other,
    })? as i64;
    Ok(if negative { -v } else { v })
}

/// The words after what a transaction moves: `[via <node>] [nowait] [protocol <name>]`,
/// in any order, each at most once.
struct CommitOptions {
    via: Option<NodeId>,
    nowait: bool,
    protocol: Option<Protocol>,
}

/// Reads [`CommitOptions`] from argument `first` to the end.
fn commit_options(a: &Args, first: usize) -> Result<CommitOptions, ParseErrorKind> {
    let mut opts = CommitOptions { via: None, nowait: false, protocol: None };
    let mut i = first;
    while i < a.words.len() {
        // A word that takes a value is only itself when the value is there: a bare
        // `via` at the end is an unexpected word, not a read past the line.
        let valued = i + 1 < a.words.len();
        match a.words[i] {
            "via" if opts.via.is_none() && valued => {
                opts.via = Some(a.id(i + 1)?);
                i += 2;
            }
            "nowait" if !opts.nowait => {
                opts.nowait = true;
                i += 1;
            }
            "protocol" if opts.protocol.is_none() && valued => {
                opts.protocol = Some(protocol_word(a.words[i + 1])?);
                i += 2;
            }
            other => return Err(Args::unexpected(other, "via <node>, nowait, protocol <name>")),
        }
    }
    Ok(opts)
}

fn protocol(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("1", a.words.len() == 1)?;
    Ok(Command::Protocol { protocol: protocol_word(a.words[0])? })
}

fn partition(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("1 or more", !a.words.is_empty())?;
    let mut nodes = Vec::with_capacity(a.words.len());
    for i in 0..a.words.len() {
        let n = a.id(i)?;
        if nodes.contains(&n) {
            return Err(ParseErrorKind::Duplicate(n));
        }
        nodes.push(n);
    }
    Ok(Command::Partition { nodes })
}

fn crash_at(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("2", a.words.len() == 2)?;
    let point = CrashPoint::EVERY
        .into_iter()
        .find(|p| p.name() == a.words[1])
        .ok_or_else(|| ParseErrorKind::UnknownCrashPoint(a.words[1].to_string()))?;
    Ok(Command::CrashAt { node: a.id(0)?, point })
}

fn live(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("1", a.words.len() == 1)?;
    match a.words[0] {
        "on" => Ok(Command::Live { on: true }),
        "off" => Ok(Command::Live { on: false }),
        other => Err(Args::unexpected(other, "on, off")),
    }
}

fn load(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("1 to 6", (1..=6).contains(&a.words.len()))?;
    let count = parse_int(a.words[0], "count", u64::MAX)?;
    let (mut kind, mut parts, mut seed, mut background, mut i) = (None, 2, None, false, 1);
    while i < a.words.len() {
        match a.words[i] {
            "transactions" if kind.is_none() && i + 1 < a.words.len() => {
                kind = Some(LoadKind::Transactions);
                let n = parse_int(a.words[i + 1], "parts", u64::MAX)?;
                if !(2..=MAX_PARTS as u64).contains(&n) {
                    return Err(ParseErrorKind::PartCount(n as usize));
                }
                parts = n as u8;
                i += 2;
            }
            word if kind.is_none()
                && word != "transactions"
                && LoadKind::from_word(word).is_some() =>
            {
                kind = LoadKind::from_word(word);
                i += 1;
            }
            "seed" if seed.is_none() && i + 1 < a.words.len() => {
                seed = Some(parse_int(a.words[i + 1], "seed", u64::MAX)?);
                i += 2;
            }
            "async" if !background => {
                background = true;
                i += 1;
            }
            other => {
                return Err(Args::unexpected(
                    other,
                    "sends, transfers, mixed, transactions <parts>, seed <n>, async",
                ))
            }
        }
    }
    let kind = kind.unwrap_or(LoadKind::Mixed);
    Ok(Command::Load { count, kind, parts, seed, background })
}

fn tx_status(a: &Args) -> Result<Command, ParseErrorKind> {
    a.arity("1", a.words.len() == 1)?;
    let n = a.words[0]
        .strip_prefix('T')
        .ok_or_else(|| ParseErrorKind::MissingT(a.words[0].to_string()))?;
    let tx = parse_int(n, "transaction", u64::MAX)?;
    Ok(Command::TxStatus { tx: TxnId(tx) })
}

fn protocol_word(word: &str) -> Result<Protocol, ParseErrorKind> {
    Protocol::from_word(word).ok_or_else(|| ParseErrorKind::UnknownProtocol(word.to_string()))
}

fn parse_int(arg: &str, what: &'static str, max: u64) -> Result<u64, ParseErrorKind> {
    let digits = arg.strip_prefix('+').unwrap_or(arg);
    if let Some(rest) = digits.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseErrorKind::Negative { what, arg: arg.to_string() });
        }
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseErrorKind::NotAnInteger { what, arg: arg.to_string() });
    }
    match digits.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(ParseErrorKind::TooLarge { what, arg: arg.to_string(), max }),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
