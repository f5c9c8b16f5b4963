//! The vocabulary of atomic transactions: what a transaction is (its parts, its money's
//! way), how one ends and why, its states as `TxStatus` prints them, which protocol runs
//! it, and where a node may be told to crash. The messages are `commit_msg`. Every
//! protocol file, the command language and the output use these; nothing here knows how
//! a protocol runs.

use crate::ids::{AccountName, Amount, NodeId, TxnId};
use serde::{Deserialize, Serialize};

/// Which of a node's accounts a change is on: its node account (named by its id, what
/// `Send` and `Receive` move) or a named one (`CreateAccount`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AccountKey {
    /// The node account.
    Own,
    /// A named account the node holds.
    Named(AccountName),
}

/// The node account's key, for iterators that hand out references.
static OWN: AccountKey = AccountKey::Own;

/// One account's change in a transaction (negative: it pays).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Change {
    /// The account.
    pub key: AccountKey,
    /// Its change when the transaction commits.
    pub delta: i64,
}

/// One node's part in a transaction: the net change of its money (negative: it pays) and
/// how its accounts change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Part {
    /// The node.
    pub node: NodeId,
    /// Its money's net change when the transaction commits.
    pub delta: i64,
    /// The changes of its accounts, in the command's order, summing to `delta`; empty when
    /// the node account alone takes `delta` (every `Transfer` between nodes).
    pub changes: Vec<Change>,
}

impl Part {
    /// The node account's change of `delta`.
    pub fn own(node: NodeId, delta: i64) -> Part {
        Part { node, delta, changes: Vec::new() }
    }

    /// Every account's change, in order.
    pub fn changes(&self) -> impl Iterator<Item = (&AccountKey, i64)> + '_ {
        let own = std::iter::once((&OWN, self.delta)).filter(|_| self.changes.is_empty());
        own.chain(self.changes.iter().map(|c| (&c.key, c.delta)))
    }

    /// The debits: what each paying account holds while the transaction is prepared.
    pub fn debits(&self) -> impl Iterator<Item = (&AccountKey, Amount)> + '_ {
        self.changes().filter(|c| c.1 < 0).map(|(k, d)| (k, Amount(d.unsigned_abs())))
    }

    /// Everything its accounts pay, before what they receive is counted.
    pub fn debited(&self) -> Amount {
        Amount(self.debits().map(|d| d.1 .0).sum())
    }
}

/// Money credited to one account of a node when a transaction commits, and where it comes
/// from: the node's own debits (`from == None`) or a payment from another node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fill {
    /// The paying node, or `None` for the node's own debits.
    pub from: Option<NodeId>,
    /// The account credited.
    pub key: AccountKey,
    /// How much.
    pub amount: Amount,
}

/// One atomic transaction: its number, its coordinator, and the part of each node in it
/// (each node at most once, the changes summing to zero). A `Transfer` is the
/// transaction of two parts, the debit node's first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxSpec {
    /// The transaction.
    pub tx: TxnId,
    /// The coordinator.
    pub coord: NodeId,
    /// The participants' parts, in the order the command first names them.
    pub parts: Vec<Part>,
}

/// Money moving from one participant to another when a transaction commits: one
/// `Credit` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Payment {
    /// Who pays.
    pub from: NodeId,
    /// Who is paid.
    pub to: NodeId,
    /// How much.
    pub amount: Amount,
}

impl TxSpec {
    /// The transfer of `amount` from `from` to `to` (two parts), coordinated by `coord`.
    pub fn transfer(tx: TxnId, from: NodeId, to: NodeId, amount: Amount, coord: NodeId) -> TxSpec {
        let delta = amount.0 as i64;
        let parts = vec![Part::own(from, -delta), Part::own(to, delta)];
        TxSpec { tx, coord, parts }
    }

    /// The transaction of `changes` (node, account, change), grouped into one part per
    /// node in the order the nodes first appear; a node whose only change is on its node
    /// account gets the plain form ([`Part::own`]).
    pub fn of_changes(tx: TxnId, coord: NodeId, changes: &[(NodeId, AccountKey, i64)]) -> TxSpec {
        let mut parts: Vec<Part> = Vec::new();
        for (node, key, delta) in changes {
            let change = Change { key: key.clone(), delta: *delta };
            match parts.iter_mut().find(|p| p.node == *node) {
                Some(p) => {
                    p.delta = p.delta.saturating_add(*delta);
                    p.changes.push(change);
                }
                None => parts.push(Part { node: *node, delta: *delta, changes: vec![change] }),
            }
        }
        for p in &mut parts {
            if let [Change { key: AccountKey::Own, .. }] = p.changes.as_slice() {
                p.changes.clear();
            }
        }
        TxSpec { tx, coord, parts }
    }

    /// The participants, in part order.
    pub fn participants(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.parts.iter().map(|p| p.node)
    }

    /// Whether `node` is a participant.
    pub fn is_participant(&self, node: NodeId) -> bool {
        self.parts.iter().any(|p| p.node == node)
    }

    /// The place of `node` among the participants.
    pub fn index_of(&self, node: NodeId) -> Option<usize> {
        self.parts.iter().position(|p| p.node == node)
    }

    /// The part of `node`, if it is a participant.
    pub fn part(&self, node: NodeId) -> Option<&Part> {
        self.parts.iter().find(|p| p.node == node)
    }

    /// The net change at `node` (0 if it is no participant).
    pub fn delta(&self, node: NodeId) -> i64 {
        self.part(node).map_or(0, |p| p.delta)
    }

    /// What `node` pays other nodes when the transaction commits (its net debit).
    pub fn pays(&self, node: NodeId) -> Amount {
        Amount(self.delta(node).min(0).unsigned_abs())
    }

    /// What `node`'s accounts hold while it is prepared: every debit, before what its
    /// other accounts receive is counted (a credit never funds a debit before it is
    /// applied: escrow's worst case).
    pub fn holds(&self, node: NodeId) -> Amount {
        self.part(node).map_or(Amount::ZERO, Part::debited)
    }

    /// The participants and the coordinator, by id.
    pub fn members(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.participants().chain([self.coord]).collect();
        v.sort();
        v.dedup();
        v
    }

    /// How the money travels between nodes when the transaction commits, by their net
    /// changes: the payers in part order pay the payees in part order, each payer as much
    /// of each payee's due as it has left (the transportation problem's north-west corner
    /// rule), so that there are at most payers + payees − 1 payments, each one `Credit`,
    /// and each pair of nodes exchanges at most one. A transfer is one payment: debit
    /// node to credit node.
    pub fn payments(&self) -> Vec<Payment> {
        let mut payers: Vec<(NodeId, u64)> = self
            .parts
            .iter()
            .filter(|p| p.delta < 0)
            .map(|p| (p.node, p.delta.unsigned_abs()))
            .collect();
        let mut v = Vec::new();
        let mut i = 0;
        for payee in self.parts.iter().filter(|p| p.delta > 0) {
            let mut due = payee.delta.unsigned_abs();
            while due > 0 && i < payers.len() {
                let n = due.min(payers[i].1);
                v.push(Payment { from: payers[i].0, to: payee.node, amount: Amount(n) });
                due -= n;
                payers[i].1 -= n;
                if payers[i].1 == 0 {
                    i += 1;
                }
            }
        }
        v
    }

    /// The payments `node` makes.
    pub fn payments_from(&self, node: NodeId) -> Vec<Payment> {
        self.payments().into_iter().filter(|p| p.from == node).collect()
    }

    /// The payments `node` receives.
    pub fn payments_to(&self, node: NodeId) -> Vec<Payment> {
        self.payments().into_iter().filter(|p| p.to == node).collect()
    }

    /// Whether `payer` pays `node` anything.
    pub fn pays_to(&self, payer: NodeId, node: NodeId) -> bool {
        self.payments().iter().any(|p| p.from == payer && p.to == node)
    }

    /// Which of `node`'s accounts receive what when the transaction commits: its credited
    /// accounts in order, filled first from its own debits, then from the payments it
    /// receives in [`TxSpec::payments`]' order. Each `Credit` thus lands on named
    /// accounts the moment it arrives, and the node's total is always the sum of its
    /// accounts.
    pub fn fills(&self, node: NodeId) -> Vec<Fill> {
        let Some(part) = self.part(node) else { return Vec::new() };
        let mut sources: Vec<(Option<NodeId>, u64)> = vec![(None, part.debited().0)];
        sources.extend(self.payments_to(node).iter().map(|p| (Some(p.from), p.amount.0)));
        let mut v = Vec::new();
        let mut i = 0;
        for (key, delta) in part.changes().filter(|c| c.1 > 0) {
            let mut due = delta.unsigned_abs();
            while due > 0 && i < sources.len() {
                let n = due.min(sources[i].1);
                if n > 0 {
                    v.push(Fill { from: sources[i].0, key: key.clone(), amount: Amount(n) });
                }
                due -= n;
                sources[i].1 -= n;
                if sources[i].1 == 0 {
                    i += 1;
                }
            }
        }
        v
    }

    /// Whether the parts make sense: at least one, each node once, each account once
    /// within its part, each change within [`Amount::MAX`], each part's changes summing
    /// to its net change and the net changes to zero. A spec that does not is voted NO
    /// (it can only come from a bug: the master checks what it starts).
    pub fn is_valid(&self) -> bool {
        let mut nodes: Vec<NodeId> = self.participants().collect();
        nodes.sort();
        nodes.dedup();
        let sum = self.parts.iter().try_fold(0i64, |s, p| s.checked_add(p.delta));
        let part_ok = |p: &Part| {
            let mut keys: Vec<&AccountKey> = p.changes.iter().map(|c| &c.key).collect();
            keys.sort();
            keys.dedup();
            let sum = p.changes.iter().try_fold(0i64, |s, c| s.checked_add(c.delta));
            keys.len() == p.changes.len()
                && (p.changes.is_empty() || sum == Some(p.delta))
                && p.changes().all(|c| c.1.unsigned_abs() <= Amount::MAX.0)
        };
        nodes.len() == self.parts.len()
            && !self.parts.is_empty()
            && self.parts.iter().all(part_ok)
            && sum == Some(0)
    }
}

/// Why a transaction aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AbortReason {
    /// A paying node's available balance is short.
    InsufficientFunds,
    /// A node of the transaction is down, or died before voting.
    NodeDown,
    /// A vote did not come in time.
    Timeout,
}

impl AbortReason {
    /// Every reason, in the order `Stats` prints them.
    pub const ALL: [AbortReason; 3] =
        [AbortReason::InsufficientFunds, AbortReason::NodeDown, AbortReason::Timeout];

    /// The word SPEC chapter 5 prints.
    pub fn as_str(self) -> &'static str {
        match self {
            AbortReason::InsufficientFunds => "insufficient-funds",
            AbortReason::NodeDown => "node-down",
            AbortReason::Timeout => "timeout",
        }
    }

    /// Its place in [`AbortReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which atomic-commit protocol a transfer runs (SPEC chapter 8).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Protocol {
    /// Two-phase commit (chapter 5): blocks when its coordinator dies after the votes.
    #[default]
    TwoPc,
    /// Skeen's three-phase commit with its termination protocol: finishes without the
    /// coordinator, splits under a partition or a pause.
    ThreePc,
    /// Gray and Lamport's Paxos Commit, F = 1: safe under every fault, live with two of
    /// three acceptors.
    Paxos,
}

impl Protocol {
    /// Every protocol, in the order `Stats` prints them.
    pub const ALL: [Protocol; 3] = [Protocol::TwoPc, Protocol::ThreePc, Protocol::Paxos];

    /// The word of the command language.
    pub fn word(self) -> &'static str {
        match self {
            Protocol::TwoPc => "2pc",
            Protocol::ThreePc => "3pc",
            Protocol::Paxos => "paxos",
        }
    }

    /// The protocol a word names.
    pub fn from_word(word: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.word() == word)
    }

    /// Its place in [`Protocol::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A transfer's state at one node, as `TxStatus` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TxState {
    /// Never voted YES here, and not coordinating it.
    None,
    /// A coordinator that is no participant, waiting for votes. `TxStatus` prints it
    /// as `NONE`: chapter 8 lists the states a line may show, and this is none of them
    /// (the coordinator has decided nothing and voted nothing).
    Voting,
    /// Voted YES, undecided (3PC: uncertain).
    Prepared,
    /// Three-phase commit: pre-committed (committable), undecided.
    PreCommitted,
    /// Committed here.
    Committed,
    /// Aborted here.
    Aborted,
}

impl TxState {
    /// The word `TxStatus` prints.
    pub fn word(self) -> &'static str {
        match self {
            TxState::None => "NONE",
            TxState::Voting => "NONE",
            TxState::Prepared => "PREPARED",
            TxState::PreCommitted => "PRECOMMITTED",
            TxState::Committed => "COMMITTED",
            TxState::Aborted => "ABORTED",
        }
    }

    /// A state a transfer never leaves.
    pub fn is_final(self) -> bool {
        matches!(self, TxState::Committed | TxState::Aborted)
    }
}

/// How a transfer ended, as its coordinator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxOutcome {
    /// The decision is logged as commit.
    Committed,
    /// Aborted, and why.
    Aborted(AbortReason),
}

/// The places a node can be told to die at (`CrashAt`, SPEC chapter 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CrashPoint {
    /// A participant got `Prepare` and has logged nothing.
    BeforeVote,
    /// A participant has logged and sent YES.
    AfterVote,
    /// The coordinator has every vote and has logged no decision.
    BeforeDecision,
    /// The coordinator has logged COMMIT and sent nothing.
    AfterDecision,
    /// The coordinator has sent the decision to one participant only.
    MidCommit,
    /// A participant has applied the commit and not acked it.
    BeforeAck,
    /// Three-phase commit's coordinator: every YES is in, nothing of the pre-commit logged
    /// or sent.
    BeforePreCommit,
    /// Three-phase commit's coordinator: `PreCommit` sent to the first participant only.
    MidPreCommit,
    /// Three-phase commit: a coordinator that sent `PreCommit` to every participant and no
    /// `DoCommit`; a participant that logged `PreCommitted` and sent its ack.
    AfterPreCommit,
    /// Paxos Commit's acceptor: an accept logged and sent.
    AfterAccept,
}

impl CrashPoint {
    /// The points two-phase commit reaches (chapter 5), in protocol order.
    pub const ALL: [CrashPoint; 6] = [
        CrashPoint::BeforeVote,
        CrashPoint::AfterVote,
        CrashPoint::BeforeDecision,
        CrashPoint::AfterDecision,
        CrashPoint::MidCommit,
        CrashPoint::BeforeAck,
    ];

    /// Every point of every protocol: chapter 5's, then chapter 8's.
    pub const EVERY: [CrashPoint; 10] = [
        CrashPoint::BeforeVote,
        CrashPoint::AfterVote,
        CrashPoint::BeforeDecision,
        CrashPoint::AfterDecision,
        CrashPoint::MidCommit,
        CrashPoint::BeforeAck,
        CrashPoint::BeforePreCommit,
        CrashPoint::MidPreCommit,
        CrashPoint::AfterPreCommit,
        CrashPoint::AfterAccept,
    ];

    /// The name a command file uses.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::BeforePreCommit => "before-precommit",
            CrashPoint::MidPreCommit => "mid-precommit",
            CrashPoint::AfterPreCommit => "after-precommit",
            CrashPoint::AfterAccept => "after-accept",
            CrashPoint::BeforeVote => "before-vote",
            CrashPoint::AfterVote => "after-vote",
            CrashPoint::BeforeDecision => "before-decision",
            CrashPoint::AfterDecision => "after-decision",
            CrashPoint::MidCommit => "mid-commit",
            CrashPoint::BeforeAck => "before-ack",
        }
    }
}
