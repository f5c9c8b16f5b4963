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
}
