//! Newtypes for every id and amount that crosses a module boundary.
//!
//! Owns only the types and their text form; parsing from command text lives in
//! `command::parse`, which reports range errors with line numbers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node (bank branch) id as written in the command file: `CreateNode 7 100` makes node 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

/// A snapshot id: 0, 1, 2, … in `BeginSnapshot` order within one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SnapshotId(pub u32);

/// A transaction id: `T<n>`, numbered 1, 2, 3, … in command order within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId(pub u64);

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}", self.0)
    }
}

/// An amount of money. The total money of a system never exceeds [`Amount::MAX`]
/// (2^63 − 1), so no balance or sum of balances can overflow a `u64`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Amount(pub u64);

impl Amount {
    /// The largest total a system may hold: 2^63 − 1.
    pub const MAX: Amount = Amount(i64::MAX as u64);
    /// No money.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, or `None` past [`Amount::MAX`].
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).filter(|&v| v <= Amount::MAX.0).map(Amount)
    }

    /// `self − other`, or `None` when `other` is larger.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }
}

impl std::iter::Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Amount {
        Amount(iter.map(|a| a.0).sum())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A named account (SPEC chapter 11): a letter, then letters, digits, `_` or `-`, at most
/// [`AccountName::MAX_LEN`] characters, case-sensitive. A node's own balance is its *node
/// account*, named by its id, which is never an `AccountName` (a name starts with a letter).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountName(String);

/// Why a word is no account name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    /// Empty, or longer than [`AccountName::MAX_LEN`].
    Length,
    /// It does not start with a letter.
    FirstChar,
    /// A character other than a letter, a digit, `_` or `-`.
    Char(char),
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadName::Length => write!(f, "a name has 1 to {} characters", AccountName::MAX_LEN),
            BadName::FirstChar => write!(f, "a name starts with a letter"),
            BadName::Char(c) => write!(f, "{c:?} is not a letter, a digit, '_' or '-'"),
        }
    }
}

impl AccountName {
    /// The longest name, in characters.
    pub const MAX_LEN: usize = 32;

    /// The name `word`, if it is one.
    ///
    /// # Errors
    /// Why it is not.
    pub fn parse(word: &str) -> Result<AccountName, BadName> {
        if word.is_empty() || word.chars().count() > Self::MAX_LEN {
            return Err(BadName::Length);
        }
        if !word.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(BadName::FirstChar);
        }
        match word.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
            Some(c) => Err(BadName::Char(c)),
            None => Ok(AccountName(word.to_string())),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_add_stops_at_the_system_maximum() {
        assert_eq!(Amount(1).checked_add(Amount(2)), Some(Amount(3)));
        assert_eq!(Amount::MAX.checked_add(Amount(0)), Some(Amount::MAX));
        assert_eq!(Amount::MAX.checked_add(Amount(1)), None);
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
    }

    #[test]
    fn checked_sub_refuses_to_go_negative() {
        assert_eq!(Amount(5).checked_sub(Amount(5)), Some(Amount(0)));
        assert_eq!(Amount(5).checked_sub(Amount(6)), None);
    }

    #[test]
    fn account_names_follow_chapter_11() {
        let x32 = "x".repeat(32);
        for ok in ["ACC001", "a", "Savings_2-b", x32.as_str()] {
            assert_eq!(AccountName::parse(ok).map(|n| n.to_string()).as_deref(), Ok(ok));
        }
        assert_eq!(AccountName::parse(""), Err(BadName::Length));
        assert_eq!(AccountName::parse(&"x".repeat(33)), Err(BadName::Length));
        assert_eq!(AccountName::parse("1abc"), Err(BadName::FirstChar));
        assert_eq!(AccountName::parse("_a"), Err(BadName::FirstChar));
        assert_eq!(AccountName::parse("acc.1"), Err(BadName::Char('.')));
        assert_eq!(AccountName::parse("ACC:1"), Err(BadName::Char(':')));
        assert_eq!(AccountName::parse("Konto\u{e9}"), Err(BadName::Char('\u{e9}')));
    }
}
