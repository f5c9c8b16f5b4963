//! Text to [`Command`], with the line number and a reason for every rejected line.

use super::Command;
use crate::ids::{Amount, NodeId, TxnId};
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
    let err = |kind| ParseError { line, text: text.to_string(), kind };
    let mut words = text.split_whitespace();
    let name = words.next().expect("a non-blank line has a first word");
    let args: Vec<&str> = words.collect();
    let arity = |expected: &'static str, ok: bool| {
        if ok {
            Ok(())
        } else {
            let usage = super::usage(name);
            Err(err(ParseErrorKind::WrongArgCount { expected, got: args.len(), usage }))
        }
    };
    let id =
        |i: usize| parse_int(args[i], "id", u32::MAX as u64).map(|v| NodeId(v as u32)).map_err(err);
    let amount = |i: usize| parse_int(args[i], "amount", Amount::MAX.0).map(Amount).map_err(err);
    let unexpected = |word: &str, expected: &'static str| {
        err(ParseErrorKind::UnexpectedWord { word: word.to_string(), expected })
    };
    let cmd = match name {
        "StartMaster" => arity("no", args.is_empty()).map(|_| Command::StartMaster)?,
        "CreateNode" => {
            arity("2 or 4", args.len() == 2 || args.len() == 4)?;
            let on = match args.get(2..) {
                Some([on, host]) if *on == "on" => Some(host.to_string()),
                Some([word, _]) => return Err(unexpected(word, "on <host>")),
                _ => None,
            };
            Command::CreateNode { id: id(0)?, amount: amount(1)?, on }
        }
        "Send" => {
            arity("3", args.len() == 3)?;
            let (from, to, amount) = (id(0)?, id(1)?, amount(2)?);
            if from == to {
                return Err(err(ParseErrorKind::SelfChannel(from)));
            }
            Command::Send { from, to, amount }
        }
        "Receive" => {
            arity("1 or 2", args.len() == 1 || args.len() == 2)?;
            let to = id(0)?;
            let from = if args.len() == 2 { Some(id(1)?) } else { None };
            if from == Some(to) {
                return Err(err(ParseErrorKind::SelfChannel(to)));
            }
            Command::Receive { to, from }
        }
        "ReceiveAll" => arity("no", args.is_empty()).map(|_| Command::ReceiveAll)?,
        "BeginSnapshot" => {
            arity("1", args.len() == 1)?;
            Command::BeginSnapshot { node: id(0)? }
        }
        "CollectState" => arity("no", args.is_empty()).map(|_| Command::CollectState)?,
        "PrintSnapshot" => arity("no", args.is_empty()).map(|_| Command::PrintSnapshot)?,
        "KillAll" => arity("no", args.is_empty()).map(|_| Command::KillAll)?,
        "help" => arity("no", args.is_empty()).map(|_| Command::Help)?,
        "Transfer" => {
            arity("3 to 8", (3..=8).contains(&args.len()))?;
            let (from, to, amount) = (id(0)?, id(1)?, amount(2)?);
            if from == to {
                return Err(err(ParseErrorKind::SelfChannel(from)));
            }
            let (mut via, mut nowait, mut protocol, mut i) = (None, false, None, 3);
            while i < args.len() {
                match args[i] {
                    "via" if via.is_none() && i + 1 < args.len() => {
                        via = Some(id(i + 1)?);
                        i += 2;
                    }
                    "nowait" if !nowait => {
                        nowait = true;
                        i += 1;
                    }
                    "protocol" if protocol.is_none() && i + 1 < args.len() => {
                        protocol = Some(protocol_word(args[i + 1]).map_err(err)?);
                        i += 2;
                    }
                    other => return Err(unexpected(other, "via <node>, nowait, protocol <name>")),
                }
            }
            Command::Transfer { from, to, amount, via, nowait, protocol }
        }
        "Protocol" => {
            arity("1", args.len() == 1)?;
            Command::Protocol { protocol: protocol_word(args[0]).map_err(err)? }
        }
        "Partition" => {
            arity("1 or more", !args.is_empty())?;
            let mut nodes = Vec::with_capacity(args.len());
            for i in 0..args.len() {
                let n = id(i)?;
                if nodes.contains(&n) {
                    return Err(err(ParseErrorKind::Duplicate(n)));
                }
                nodes.push(n);
            }
            Command::Partition { nodes }
        }
        "Heal" => arity("no", args.is_empty()).map(|_| Command::Heal)?,
        "Pause" | "Resume" => {
            arity("1", args.len() == 1)?;
            let node = id(0)?;
            if name == "Pause" {
                Command::Pause { node }
            } else {
                Command::Resume { node }
            }
        }
        "Balances" => arity("no", args.is_empty()).map(|_| Command::Balances)?,
        "Hold" | "Release" | "Lose" => {
            arity("2", args.len() == 2)?;
            let (from, to) = (id(0)?, id(1)?);
            if from == to {
                return Err(err(ParseErrorKind::SelfChannel(from)));
            }
            match name {
                "Hold" => Command::Hold { from, to },
                "Release" => Command::Release { from, to },
                _ => Command::Lose { from, to },
            }
        }
        "Crash" => {
            arity("1", args.len() == 1)?;
            Command::Crash { node: id(0)? }
        }
        "Restart" => {
            arity("1", args.len() == 1)?;
            Command::Restart { node: id(0)? }
        }
        "CrashAt" => {
            arity("2", args.len() == 2)?;
            let point = CrashPoint::EVERY
                .into_iter()
                .find(|p| p.name() == args[1])
                .ok_or_else(|| err(ParseErrorKind::UnknownCrashPoint(args[1].to_string())))?;
            Command::CrashAt { node: id(0)?, point }
        }
        "Check" => arity("no", args.is_empty()).map(|_| Command::Check)?,
        "Wait" => arity("no", args.is_empty()).map(|_| Command::Wait)?,
        "Live" => {
            arity("1", args.len() == 1)?;
            match args[0] {
                "on" => Command::Live { on: true },
                "off" => Command::Live { on: false },
                other => return Err(unexpected(other, "on, off")),
            }
        }
        "Load" => {
            arity("1 to 5", (1..=5).contains(&args.len()))?;
            let count = parse_int(args[0], "count", u64::MAX).map_err(err)?;
            let (mut kind, mut seed, mut background, mut i) = (None, None, false, 1);
            while i < args.len() {
                match args[i] {
                    word if kind.is_none() && LoadKind::from_word(word).is_some() => {
                        kind = LoadKind::from_word(word);
                        i += 1;
                    }
                    "seed" if seed.is_none() && i + 1 < args.len() => {
                        seed = Some(parse_int(args[i + 1], "seed", u64::MAX).map_err(err)?);
                        i += 2;
                    }
                    "async" if !background => {
                        background = true;
                        i += 1;
                    }
                    other => {
                        return Err(unexpected(other, "sends, transfers, mixed, seed <n>, async"))
                    }
                }
            }
            let kind = kind.unwrap_or(LoadKind::Mixed);
            Command::Load { count, kind, seed, background }
        }
        "Stats" => arity("no", args.is_empty()).map(|_| Command::Stats)?,
        "TxStatus" => {
            arity("1", args.len() == 1)?;
            let n = args[0]
                .strip_prefix('T')
                .ok_or_else(|| err(ParseErrorKind::MissingT(args[0].to_string())))?;
            let tx = parse_int(n, "transaction", u64::MAX).map_err(err)?;
            Command::TxStatus { tx: TxnId(tx) }
        }
        other => return Err(err(ParseErrorKind::UnknownCommand(other.to_string()))),
    };
    Ok(Some(cmd))
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
