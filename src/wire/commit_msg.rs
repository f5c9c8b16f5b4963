//! What the commit protocols say to each other on the FIFO channels: one message enum
//! per protocol (its own words for its own rules), and the `Credit` that carries a
//! committed transaction's money, which every protocol's participants share.
//!
//! postcard is not self-describing: append variants, never reorder them.

use super::commit::{AbortReason, TxSpec, TxState};
use crate::ids::{Amount, NodeId, TxnId};
use serde::{Deserialize, Serialize};

/// A commit protocol's message between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommitMsg {
    /// Two-phase commit.
    TwoPc(TwoPcMsg),
    /// Three-phase commit.
    ThreePc(ThreeMsg),
    /// Paxos Commit.
    Paxos(PaxosMsg),
    /// Payer → payee of a committed transaction: the money, after the payer's debit is
    /// durable. The only message that carries a transaction's money; applied once.
    Credit {
        /// The transaction.
        tx: TxnId,
        /// How much.
        amount: Amount,
    },
}

/// Two-phase commit's messages (Gray 1978; presumed abort).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TwoPcMsg {
    /// Coordinator → participant: vote on this transaction.
    Prepare {
        /// The transaction.
        spec: TxSpec,
    },
    /// Participant → coordinator.
    Vote {
        /// The transaction.
        tx: TxnId,
        /// `None` for YES, else why NO.
        no: Option<AbortReason>,
    },
    /// Coordinator → participant: the decision (also the answer to `DecisionReq`).
    Decide {
        /// The transaction.
        tx: TxnId,
        /// Commit or abort.
        commit: bool,
    },
    /// Participant → coordinator: the commit is applied here.
    Ack {
        /// The transaction.
        tx: TxnId,
    },
    /// Participant in doubt → coordinator: what was decided?
    DecisionReq {
        /// The transaction.
        tx: TxnId,
    },
}

/// Three-phase commit's messages (Skeen 1981; the termination protocol of Bernstein,
/// Hadzilacos and Goodman 1987, ch. 7).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ThreeMsg {
    /// Coordinator → participant: vote on this transaction (the textbook's CanCommit).
    Prepare {
        /// The transaction.
        spec: TxSpec,
    },
    /// Participant → coordinator.
    Vote {
        /// The transaction.
        tx: TxnId,
        /// `None` for YES, else why NO.
        no: Option<AbortReason>,
    },
    /// Coordinator (or the termination protocol's leader) → participant: every vote was
    /// YES; become pre-committed.
    PreCommit {
        /// The transaction.
        tx: TxnId,
    },
    /// Participant → whoever sent the PreCommit: pre-committed (forced).
    PreCommitAck {
        /// The transaction.
        tx: TxnId,
    },
    /// Coordinator (or leader) → participant: commit (a payer's money does this for the
    /// node it pays).
    DoCommit {
        /// The transaction.
        tx: TxnId,
    },
    /// An outcome told: an abort, or the answer to `DecisionReq`.
    Decide {
        /// The transaction.
        tx: TxnId,
        /// Commit or abort.
        commit: bool,
    },
    /// Participant → coordinator: the commit is applied here.
    Ack {
        /// The transaction.
        tx: TxnId,
    },
    /// Termination: the elected participant asks for the state of the transaction here.
    StateReq {
        /// The transaction.
        tx: TxnId,
        /// The leader reaches every node of the transaction: then a node in recovery
        /// answers too (no decision can have been taken where the leader cannot see it).
        all: bool,
    },
    /// Termination: the answer to `StateReq`.
    State {
        /// The transaction.
        tx: TxnId,
        /// The state here.
        state: TxState,
    },
    /// A node that restarted in doubt (or a coordinator that restarted pre-committing)
    /// asks the others the outcome; only a node that knows it answers. Unlike two-phase
    /// commit's, an unknown transaction is not presumed aborted: the termination protocol
    /// decides it.
    DecisionReq {
        /// The transaction.
        tx: TxnId,
    },
}

/// A Paxos Commit ballot: unique per node (the node's id breaks ties), ordered by number
/// then node. Ballot `(0, r)` is participant `r`'s own, for its own vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// The number.
    pub n: u32,
    /// The node that owns it.
    pub node: NodeId,
}

/// What one Paxos instance (one participant's vote) has accepted: at `bal`, the value
/// `prepared` (the participant's YES) or not (its NO, or what a leader proposes when it
/// finds no vote).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Accept {
    /// The instance: the participant whose vote it decides.
    pub inst: NodeId,
    /// The ballot.
    pub bal: Ballot,
    /// Prepared (YES) or aborted.
    pub prepared: bool,
}

/// Paxos Commit's messages (Gray and Lamport, "Consensus on Transaction Commit", TODS
/// 2006), with F = 1: three acceptors, one Paxos instance per participant's vote. Several
/// logical messages travel as one where the sender is both a participant and an acceptor,
/// so a fault-free transfer costs as many messages as two-phase commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaxosMsg {
    /// Leader → participant: vote on this transaction, whose acceptors are these; when
    /// the leader is a participant, with its own vote's phase-2a message.
    Prepare {
        /// The transaction.
        spec: TxSpec,
        /// The three acceptors.
        acceptors: [NodeId; 3],
        /// The leader's own vote at its ballot 0, when it is a participant.
        own: Option<Accept>,
    },
    /// A vote or a leader's proposal, to an acceptor: accept this.
    Phase2a {
        /// The transaction.
        tx: TxnId,
        /// What to accept.
        accept: Accept,
    },
    /// An acceptor accepted (forced) one or two values; with the sender's own vote's
    /// phase-2a when it is a participant answering a `Prepare`.
    Phase2b {
        /// The transaction.
        tx: TxnId,
        /// What it accepted.
        accepted: [Option<Accept>; 2],
        /// The sender's own vote, to be accepted by the receiver too.
        vote: Option<Accept>,
        /// Why its vote is NO, when it is.
        no: Option<AbortReason>,
    },
    /// A leader with a higher ballot: promise to accept nothing lower, in every instance.
    Phase1a {
        /// The transaction.
        tx: TxnId,
        /// The ballot.
        bal: Ballot,
        /// The transaction (an acceptor may never have heard of it).
        spec: TxSpec,
        /// The acceptors.
        acceptors: [NodeId; 3],
    },
    /// An acceptor's promise (forced), with the highest value it accepted in each
    /// instance.
    Phase1b {
        /// The transaction.
        tx: TxnId,
        /// The ballot promised.
        bal: Ballot,
        /// Per instance (in part order), the highest accepted.
        last: Vec<Option<Accept>>,
    },
    /// A participant that restarted in doubt asks the others the outcome; only a node
    /// that knows it answers. Nothing is presumed: an acceptor that never heard of the
    /// transaction stays silent, and a timeout leads a ballot instead.
    DecisionReq {
        /// The transaction.
        tx: TxnId,
    },
    /// The outcome, told by whoever learnt it.
    Decide {
        /// The transaction.
        tx: TxnId,
        /// Commit or abort.
        commit: bool,
    },
    /// Participant → coordinator: the commit is applied here.
    Ack {
        /// The transaction.
        tx: TxnId,
    },
}

impl CommitMsg {
    /// The transaction this message is about.
    pub fn tx(&self) -> TxnId {
        match self {
            CommitMsg::TwoPc(m) => m.tx(),
            CommitMsg::ThreePc(m) => m.tx(),
            CommitMsg::Paxos(m) => m.tx(),
            CommitMsg::Credit { tx, .. } => *tx,
        }
    }

    /// The money this message carries (only `Credit` carries any).
    pub fn money(&self) -> Option<(TxnId, Amount)> {
        match *self {
            CommitMsg::Credit { tx, amount } => Some((tx, amount)),
            _ => None,
        }
    }

    /// The word `Receive` prints for this message, and the trace's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            CommitMsg::Credit { .. } => "Credit",
            CommitMsg::TwoPc(m) => match m {
                TwoPcMsg::Prepare { .. } => "Prepare",
                TwoPcMsg::Vote { .. } => "Vote",
                TwoPcMsg::Decide { commit, .. } => decide_word(*commit),
                TwoPcMsg::Ack { .. } => "Ack",
                TwoPcMsg::DecisionReq { .. } => "DecisionReq",
            },
            CommitMsg::ThreePc(m) => match m {
                ThreeMsg::Prepare { .. } => "Prepare",
                ThreeMsg::Vote { .. } => "Vote",
                ThreeMsg::PreCommit { .. } => "PreCommit",
                ThreeMsg::PreCommitAck { .. } => "PreCommitAck",
                ThreeMsg::DoCommit { .. } => "DoCommit",
                ThreeMsg::Decide { commit, .. } => decide_word(*commit),
                ThreeMsg::Ack { .. } => "Ack",
                ThreeMsg::StateReq { .. } => "StateReq",
                ThreeMsg::State { .. } => "State",
                ThreeMsg::DecisionReq { .. } => "DecisionReq",
            },
            CommitMsg::Paxos(m) => match m {
                PaxosMsg::Prepare { .. } => "Prepare",
                PaxosMsg::Phase1a { .. } => "Phase1a",
                PaxosMsg::Phase1b { .. } => "Phase1b",
                PaxosMsg::Phase2a { .. } => "Phase2a",
                PaxosMsg::Phase2b { .. } => "Phase2b",
                PaxosMsg::DecisionReq { .. } => "DecisionReq",
                PaxosMsg::Decide { commit, .. } => decide_word(*commit),
                PaxosMsg::Ack { .. } => "Ack",
            },
        }
    }

    /// Why a vote this message carries is NO, if it is one.
    pub fn no_vote(&self) -> Option<AbortReason> {
        match self {
            CommitMsg::TwoPc(TwoPcMsg::Vote { no, .. })
            | CommitMsg::ThreePc(ThreeMsg::Vote { no, .. }) => *no,
            _ => None,
        }
    }
}

/// A decision's word: `Commit` or `Abort`.
fn decide_word(commit: bool) -> &'static str {
    if commit {
        "Commit"
    } else {
        "Abort"
    }
}

impl TwoPcMsg {
    /// The transaction this message is about.
    pub fn tx(&self) -> TxnId {
        match self {
            TwoPcMsg::Prepare { spec } => spec.tx,
            TwoPcMsg::Vote { tx, .. }
            | TwoPcMsg::Decide { tx, .. }
            | TwoPcMsg::Ack { tx }
            | TwoPcMsg::DecisionReq { tx } => *tx,
        }
    }
}

impl ThreeMsg {
    /// The transaction this message is about.
    pub fn tx(&self) -> TxnId {
        match self {
            ThreeMsg::Prepare { spec } => spec.tx,
            ThreeMsg::Vote { tx, .. }
            | ThreeMsg::PreCommit { tx }
            | ThreeMsg::PreCommitAck { tx }
            | ThreeMsg::DoCommit { tx }
            | ThreeMsg::Decide { tx, .. }
            | ThreeMsg::Ack { tx }
            | ThreeMsg::StateReq { tx, .. }
            | ThreeMsg::DecisionReq { tx }
            | ThreeMsg::State { tx, .. } => *tx,
        }
    }
}

impl PaxosMsg {
    /// The transaction this message is about.
    pub fn tx(&self) -> TxnId {
        match self {
            PaxosMsg::Prepare { spec, .. } => spec.tx,
            PaxosMsg::Phase2a { tx, .. }
            | PaxosMsg::Phase2b { tx, .. }
            | PaxosMsg::Phase1a { tx, .. }
            | PaxosMsg::Phase1b { tx, .. }
            | PaxosMsg::DecisionReq { tx }
            | PaxosMsg::Decide { tx, .. }
            | PaxosMsg::Ack { tx } => *tx,
        }
    }
}

impl From<TwoPcMsg> for CommitMsg {
    fn from(m: TwoPcMsg) -> CommitMsg {
        CommitMsg::TwoPc(m)
    }
}

impl From<ThreeMsg> for CommitMsg {
    fn from(m: ThreeMsg) -> CommitMsg {
        CommitMsg::ThreePc(m)
    }
}

impl From<PaxosMsg> for CommitMsg {
    fn from(m: PaxosMsg) -> CommitMsg {
        CommitMsg::Paxos(m)
    }
}

impl TryFrom<CommitMsg> for TwoPcMsg {
    type Error = CommitMsg;
    fn try_from(m: CommitMsg) -> Result<TwoPcMsg, CommitMsg> {
        match m {
            CommitMsg::TwoPc(m) => Ok(m),
            other => Err(other),
        }
    }
}

impl TryFrom<CommitMsg> for ThreeMsg {
    type Error = CommitMsg;
    fn try_from(m: CommitMsg) -> Result<ThreeMsg, CommitMsg> {
        match m {
            CommitMsg::ThreePc(m) => Ok(m),
            other => Err(other),
        }
    }
}

impl TryFrom<CommitMsg> for PaxosMsg {
    type Error = CommitMsg;
    fn try_from(m: CommitMsg) -> Result<PaxosMsg, CommitMsg> {
        match m {
            CommitMsg::Paxos(m) => Ok(m),
            other => Err(other),
        }
    }
}
