//! Whether a command makes sense against the running system: the rules of SPEC chapter
//! 3 (and the later chapters') that a well-formed line can still break, written once and
//! used by the master and by the in-process replay (`crate::replay`) alike. Each broken
//! rule is a [`Rejection`], whose text is what `error: line N: …` says. Pure: it reads
//! the ledger, changes nothing.

use super::ledger::{ChannelId, Ledger};
use crate::command::AccountRef;
use crate::ids::{AccountName, Amount, NodeId};
use crate::wire::AccountKey;
use std::fmt;

/// A rule a command breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No such node.
    UnknownNode(NodeId),
    /// `CreateNode` of an existing id.
    NodeExists(NodeId),
    /// The total money would pass 2^63 − 1.
    TotalTooBig {
        /// All money created so far.
        total: Amount,
        /// What the line adds.
        amount: Amount,
    },
    /// More nodes than the open-files limit lets the run hold.
    TooManyNodes {
        /// How many fit.
        max: u64,
        /// The limit per process.
        limit: u64,
    },
    /// The node's process is dead.
    Down(NodeId),
    /// The node's process is stopped.
    Paused(NodeId),
    /// `Receive <to>` with nothing waiting for it.
    NothingFor(NodeId),
    /// `Receive` on an empty channel.
    Empty(ChannelId),
    /// `Receive` on a held channel.
    Held(ChannelId),
    /// `Receive` on a channel whose messages died with its receiver and wait for a
    /// sender that is down.
    Lost(ChannelId),
    /// No such account.
    UnknownAccount(AccountName),
    /// `CreateAccount` of a name in use.
    AccountExists(AccountName),
    /// Anything else, in words.
    Other(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::UnknownNode(n) => write!(f, "unknown node {n}"),
            Rejection::NodeExists(n) => write!(f, "node {n} already exists"),
            Rejection::TotalTooBig { total, amount } => {
                write!(f, "the total money ({total} + {amount}) would exceed {}", Amount::MAX)
            }
            Rejection::TooManyNodes { max, limit } => write!(
                f,
                "{max} nodes is the most this run can hold: each process may open {limit} \
                 files (ulimit -n), and a node takes 3 in the master; raise the limit to run more"
            ),
            Rejection::Down(n) => write!(f, "node {n} is down"),
            Rejection::Paused(n) => write!(f, "node {n} is paused"),
            Rejection::NothingFor(n) => write!(f, "no message is waiting for node {n}"),
            Rejection::Empty((a, b)) => write!(f, "channel {a} -> {b} is empty"),
            Rejection::Held((a, b)) => write!(f, "channel {a} -> {b} is held (Release it first)"),
            Rejection::Lost((a, b)) => write!(
                f,
                "channel {a} -> {b} waits for node {a} to send its messages again, and node \
                 {a} is down"
            ),
            Rejection::UnknownAccount(a) => write!(f, "unknown account {a}"),
            Rejection::AccountExists(a) => write!(f, "account {a} already exists"),
            Rejection::Other(why) => f.write_str(why),
        }
    }
}

impl From<String> for Rejection {
    fn from(why: String) -> Rejection {
        Rejection::Other(why)
    }
}

impl From<&str> for Rejection {
    fn from(why: &str) -> Rejection {
        Rejection::Other(why.to_string())
    }
}

/// Every node in `ids` exists (else the first that does not).
pub fn known(ledger: &Ledger, ids: &[NodeId]) -> Result<(), Rejection> {
    match ids.iter().find(|&&id| !ledger.has_node(id)) {
        Some(&id) => Err(Rejection::UnknownNode(id)),
        None => Ok(()),
    }
}

/// `node` takes commands: not down, not paused.
pub fn runs(ledger: &Ledger, node: NodeId) -> Result<(), Rejection> {
    if ledger.is_down(node) {
        Err(Rejection::Down(node))
    } else if ledger.is_paused(node) {
        Err(Rejection::Paused(node))
    } else {
        Ok(())
    }
}

/// `CreateNode id amount`: a new id, the total bounded, room for one more node
/// (`max_nodes` of them, `limit` files each).
pub fn create_node(
    ledger: &Ledger,
    id: NodeId,
    amount: Amount,
    (max_nodes, limit): (u64, u64),
) -> Result<(), Rejection> {
    if ledger.has_node(id) {
        return Err(Rejection::NodeExists(id));
    }
    if ledger.created().checked_add(amount).is_none() {
        return Err(Rejection::TotalTooBig { total: ledger.created(), amount });
    }
    if ledger.nodes().count() as u64 >= max_nodes {
        return Err(Rejection::TooManyNodes { max: max_nodes, limit });
    }
    Ok(())
}

/// `CreateAccount name node amount`: a new name, on a node that exists and runs, the
/// total bounded.
pub fn create_account(
    ledger: &Ledger,
    name: &AccountName,
    node: NodeId,
    amount: Amount,
) -> Result<(), Rejection> {
    if ledger.holdings().node_of(name).is_some() {
        return Err(Rejection::AccountExists(name.clone()));
    }
    known(ledger, &[node])?;
    runs(ledger, node)?;
    if ledger.created().checked_add(amount).is_none() {
        return Err(Rejection::TotalTooBig { total: ledger.created(), amount });
    }
    Ok(())
}

/// The node holding `account`, and which of its accounts it is.
pub fn resolve(ledger: &Ledger, account: &AccountRef) -> Result<(NodeId, AccountKey), Rejection> {
    match account {
        AccountRef::Node(id) => known(ledger, &[*id]).map(|()| (*id, AccountKey::Own)),
        AccountRef::Named(name) => match ledger.holdings().node_of(name) {
            Some(node) => Ok((node, AccountKey::Named(name.clone()))),
            None => Err(Rejection::UnknownAccount(name.clone())),
        },
    }
}

/// One change of a transaction on the node that holds its account.
pub type Placed = (NodeId, AccountKey, i64);

/// A transaction's changes (as the command gives them: each account once, summing to
/// zero) placed on their nodes, and its coordinator: `via`, else the node of the first
/// account with a negative change (of the first account when none is negative).
pub fn transaction(
    ledger: &Ledger,
    changes: &[(AccountRef, i64)],
    via: Option<NodeId>,
) -> Result<(Vec<Placed>, NodeId), Rejection> {
    let mut placed = Vec::with_capacity(changes.len());
    for (account, delta) in changes {
        let (node, key) = resolve(ledger, account)?;
        placed.push((node, key, *delta));
    }
    known(ledger, via.as_slice())?;
    let first_payer = placed.iter().find(|c| c.2 < 0).or(placed.first()).map(|c| c.0);
    let coord = via.or(first_payer).ok_or("a transaction has parts")?;
    Ok((placed, coord))
}

/// `Send from to` and `BeginSnapshot from` (with `to` = `from`): the acting node runs,
/// and both exist.
pub fn acts(ledger: &Ledger, node: NodeId, others: &[NodeId]) -> Result<(), Rejection> {
    runs(ledger, node)?;
    known(ledger, &[node])?;
    known(ledger, others)
}

/// `Receive to [from]`: the channel it takes from (`pick` chooses among the non-empty
/// ones into `to` when no `from` is named), if it may deliver now.
pub fn receive(
    ledger: &Ledger,
    to: NodeId,
    from: Option<NodeId>,
    pick: impl FnOnce(&[NodeId]) -> NodeId,
) -> Result<ChannelId, Rejection> {
    acts(ledger, to, from.as_slice())?;
    let from = match from {
        Some(from) => from,
        None => {
            let sources = ledger.incoming(to);
            if sources.is_empty() {
                return Err(Rejection::NothingFor(to));
            }
            pick(&sources)
        }
    };
    let c = (from, to);
    if ledger.head(c).is_none() {
        Err(Rejection::Empty(c))
    } else if ledger.is_held(c) {
        Err(Rejection::Held(c))
    } else if ledger.is_lost(c) {
        // Its messages died with the receiver's process; only the sender has them.
        Err(Rejection::Lost(c))
    } else {
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> NodeId {
        NodeId(i)
    }

    // The first broken rule is the one named, in the order the course's errors come.
    #[test]
    fn rules_name_the_first_thing_wrong() {
        let mut l = Ledger::new();
        l.add_node(n(1), Amount(10));
        l.add_node(n(2), Amount(0));
        assert_eq!(create_node(&l, n(1), Amount(1), (9, 99)), Err(Rejection::NodeExists(n(1))));
        let big = create_node(&l, n(3), Amount::MAX, (9, 99));
        assert_eq!(big, Err(Rejection::TotalTooBig { total: Amount(10), amount: Amount::MAX }));
        assert_eq!(
            create_node(&l, n(3), Amount(1), (2, 99)),
            Err(Rejection::TooManyNodes { max: 2, limit: 99 })
        );
        assert_eq!(acts(&l, n(1), &[n(7)]), Err(Rejection::UnknownNode(n(7))));
        assert_eq!(receive(&l, n(2), None, |s| s[0]), Err(Rejection::NothingFor(n(2))));
        assert_eq!(receive(&l, n(2), Some(n(1)), |s| s[0]), Err(Rejection::Empty((n(1), n(2)))));
        assert!(l.send(n(1), n(2), Amount(3)));
        assert_eq!(receive(&l, n(2), None, |s| s[0]), Ok((n(1), n(2))));
        l.crash(n(2));
        assert_eq!(acts(&l, n(2), &[]), Err(Rejection::Down(n(2))));
        assert_eq!(
            Rejection::Lost((n(1), n(2))).to_string(),
            "channel 1 -> 2 waits for node 1 to send its messages again, and node 1 is down"
        );
    }
}
