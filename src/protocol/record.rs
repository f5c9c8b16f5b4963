//! The node's write-ahead-log record: plain money moves, a participant's legs (shared by
//! every protocol), and what each commit protocol promises (forced) or notes (lazy).
//! Replayed by `Branch::recover`; a leaf module (it imports only the wire's vocabulary).
//!
//! postcard is not self-describing: append variants, never reorder them.

use crate::ids::{AccountName, Amount, NodeId, TxnId};
use crate::wire::{Accept, Ballot, TxSpec};
use serde::{Deserialize, Serialize};

/// A record of a node's write-ahead log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Record {
    /// The node was created with this balance.
    Opened {
        /// The opening balance.
        balance: Amount,
    },
    /// A plain `Send` debited this much (written before the Transfer leaves). The
    /// Transfers to each peer are numbered in the order of these records.
    Sent {
        /// The receiver.
        to: NodeId,
        /// How much.
        amount: Amount,
    },
    /// A plain Transfer credited this much (written before the step's answer leaves).
    Deposited {
        /// The sender.
        from: NodeId,
        /// How much.
        amount: Amount,
    },
    /// A participant's leg, whatever its protocol.
    Leg(LegRecord),
    /// Two-phase commit's own.
    TwoPc(TwoPcRecord),
    /// Three-phase commit's own.
    ThreePc(ThreeRecord),
    /// Paxos Commit's own.
    Paxos(PaxosRecord),
    /// `CreateAccount` opened this account here, with new money.
    AccountOpened {
        /// Its name.
        name: AccountName,
        /// Its opening balance.
        amount: Amount,
    },
}

/// What every protocol's participant logs alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LegRecord {
    /// A participant applied the commit of its own part (forced): a payer's debit (its
    /// payments follow), or the commit of a part with nothing to pay.
    Committed {
        /// The transaction.
        spec: TxSpec,
    },
    /// A payee got one payment (forced before it acks or anything else follows).
    Credited {
        /// The transaction.
        spec: TxSpec,
        /// The payer.
        from: NodeId,
    },
    /// A participant released its hold after an abort (lazy).
    Aborted {
        /// The transaction.
        tx: TxnId,
    },
}

/// Two-phase commit's records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TwoPcRecord {
    /// A participant voted YES (forced before the vote).
    Prepared {
        /// The transaction.
        spec: TxSpec,
    },
    /// The coordinator decided (forced when commit; lazy when abort). When the
    /// coordinator is a participant, a commit decision is also its own part's commit.
    Decision {
        /// The transaction.
        spec: TxSpec,
        /// Commit or abort.
        commit: bool,
    },
    /// The coordinator heard every ack (lazy).
    End {
        /// The transaction.
        tx: TxnId,
    },
}

/// Three-phase commit's records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ThreeRecord {
    /// A participant voted YES (forced before the vote).
    Prepared {
        /// The transaction.
        spec: TxSpec,
    },
    /// The coordinator has every YES (forced before the first `PreCommit`); its own part,
    /// if it has one, is pre-committed with it.
    PreCommitting {
        /// The transaction.
        spec: TxSpec,
    },
    /// A participant is pre-committed (forced before its ack).
    PreCommitted {
        /// The transaction.
        spec: TxSpec,
    },
    /// The coordinator, or the termination protocol's leader, decided (forced when
    /// commit; a commit at a paying coordinator is also its debit).
    Decision {
        /// The transaction.
        spec: TxSpec,
        /// Commit or abort.
        commit: bool,
    },
    /// The coordinator heard every ack (lazy).
    End {
        /// The transaction.
        tx: TxnId,
    },
    /// Asked about a transaction it knew nothing of, this node answered abort (forced
    /// before the answer): it will never vote YES on it, even after a crash.
    Refused {
        /// The transaction.
        tx: TxnId,
    },
}

/// Paxos Commit's records. Each carries the transaction and its acceptors, so that any of
/// them lets a restarted node lead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaxosRecord {
    /// A participant voted YES (forced before its vote leaves; a payer holds its part).
    Prepared {
        /// The transaction.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
    },
    /// An acceptor promised to accept nothing below `bal` (forced before its 1b).
    Promise {
        /// The transaction.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
        /// The ballot.
        bal: Ballot,
    },
    /// An acceptor accepted a value (forced before its 2b).
    Accept {
        /// The transaction.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
        /// What it accepted.
        accept: Accept,
    },
    /// A leader took ballot `bal` (forced before its first message with it): a restarted
    /// node never takes a ballot twice.
    Ballot {
        /// The transaction.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
        /// The ballot.
        bal: Ballot,
    },
    /// The decision, as this node learnt it.
    Decision {
        /// The transaction.
        spec: TxSpec,
        /// Its acceptors.
        acceptors: [NodeId; 3],
        /// Commit or abort.
        commit: bool,
    },
    /// The coordinator heard every ack (lazy).
    End {
        /// The transaction.
        tx: TxnId,
    },
}

impl Record {
    /// The transaction this record is about, if it is about one.
    pub fn tx(&self) -> Option<TxnId> {
        match self {
            Record::Opened { .. }
            | Record::Sent { .. }
            | Record::Deposited { .. }
            | Record::AccountOpened { .. } => None,
            Record::Leg(r) => Some(match r {
                LegRecord::Committed { spec } | LegRecord::Credited { spec, .. } => spec.tx,
                LegRecord::Aborted { tx } => *tx,
            }),
            Record::TwoPc(r) => Some(match r {
                TwoPcRecord::Prepared { spec } | TwoPcRecord::Decision { spec, .. } => spec.tx,
                TwoPcRecord::End { tx } => *tx,
            }),
            Record::ThreePc(r) => Some(match r {
                ThreeRecord::Prepared { spec }
                | ThreeRecord::PreCommitting { spec }
                | ThreeRecord::PreCommitted { spec }
                | ThreeRecord::Decision { spec, .. } => spec.tx,
                ThreeRecord::End { tx } | ThreeRecord::Refused { tx } => *tx,
            }),
            Record::Paxos(r) => Some(match r {
                PaxosRecord::Prepared { spec, .. }
                | PaxosRecord::Promise { spec, .. }
                | PaxosRecord::Accept { spec, .. }
                | PaxosRecord::Ballot { spec, .. }
                | PaxosRecord::Decision { spec, .. } => spec.tx,
                PaxosRecord::End { tx } => *tx,
            }),
        }
    }
}

impl From<LegRecord> for Record {
    fn from(r: LegRecord) -> Record {
        Record::Leg(r)
    }
}

impl From<TwoPcRecord> for Record {
    fn from(r: TwoPcRecord) -> Record {
        Record::TwoPc(r)
    }
}

impl From<ThreeRecord> for Record {
    fn from(r: ThreeRecord) -> Record {
        Record::ThreePc(r)
    }
}

impl From<PaxosRecord> for Record {
    fn from(r: PaxosRecord) -> Record {
        Record::Paxos(r)
    }
}
