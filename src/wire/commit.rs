//! The vocabulary of atomic transfers: what a transfer is, the messages of its commit
//! protocols, how one ends and why, its states as `TxStatus` prints them, and where a
//! node may be told to crash. Every protocol file (`protocol::two_pc`, `three_pc`,
//! `paxos_commit`), the command language and the output use these; nothing here knows
//! how a protocol runs.

use crate::ids::{Amount, NodeId, TxnId};
use serde::{Deserialize, Serialize};

/// One transfer: who pays, who receives, how much, who coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSpec {
    /// The transaction.
    pub tx: TxnId,
    /// The debit node.
    pub from: NodeId,
    /// The credit node.
    pub to: NodeId,
    /// How much.
    pub amount: Amount,
    /// The coordinator.
    pub coord: NodeId,
}

impl TxSpec {
    /// The message that carries this transfer's money to the credit node.
    pub fn credit(&self) -> TxMsg {
        TxMsg::Credit { tx: self.tx, amount: self.amount }
    }

    /// The debit node, then the credit node.
    pub fn participants(&self) -> [NodeId; 2] {
        [self.from, self.to]
    }
}

/// Why a transaction aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbortReason {
    /// The debit node's available balance is short.
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
}

/// A two-phase-commit message between two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxMsg {
    /// Coordinator → participant: vote on this transfer.
    Prepare {
        /// The transfer.
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
    /// Debit participant → credit participant: the money, after the debit is durable.
    Credit {
        /// The transaction.
        tx: TxnId,
        /// How much.
        amount: Amount,
    },
    /// Participant → coordinator: the decision is applied here.
    Ack {
        /// The transaction.
        tx: TxnId,
    },
    /// Participant in doubt → coordinator: what was decided?
    DecisionReq {
        /// The transaction.
        tx: TxnId,
    },
    /// A message of three-phase commit's own (its votes, aborts, money and acks are the
    /// ones above).
    ThreePc(ThreeMsg),
    /// A message of Paxos Commit's own (its decisions, money and acks are the ones above).
    Paxos(PaxosMsg),
}

/// Three-phase commit's messages (Skeen 1981; the termination protocol of Bernstein,
/// Hadzilacos and Goodman 1987, ch. 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThreeMsg {
    /// Coordinator → participant: vote on this transfer (the textbook's CanCommit).
    Prepare {
        /// The transfer.
        spec: TxSpec,
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
    /// Coordinator → participant: commit (the debit side's money does this for the credit
    /// side when the debit side coordinates).
    DoCommit {
        /// The transaction.
        tx: TxnId,
    },
    /// Termination: the elected participant asks for the state of the transfer here.
    StateReq {
        /// The transaction.
        tx: TxnId,
        /// The leader reaches every node of the transfer: then a node in recovery answers
        /// too (no decision can have been taken where the leader cannot see it).
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
    /// asks the others the outcome; only a node that knows it answers (`Decide` or
    /// `DoCommit`). Unlike two-phase commit's, an unknown transaction is not presumed
    /// aborted: the termination protocol decides it.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaxosMsg {
    /// Leader → participant: vote on this transfer, whose acceptors are these; when the
    /// leader is a participant, with its own vote's phase-2a message.
    Prepare {
        /// The transfer.
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
    /// A leader with a higher ballot: promise to accept nothing lower, for both instances.
    Phase1a {
        /// The transaction.
        tx: TxnId,
        /// The ballot.
        bal: Ballot,
        /// The transfer and its acceptors (an acceptor may never have heard of it).
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
        /// Per instance (debit side's, then credit side's), the highest accepted.
        last: [Option<Accept>; 2],
    },
    /// A participant that restarted in doubt asks the others the outcome; only a node
    /// that knows it answers. Nothing is presumed: an acceptor that never heard of the
    /// transfer stays silent, and a timeout leads a ballot instead.
    DecisionReq {
        /// The transaction.
        tx: TxnId,
    },
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

impl TxMsg {
    /// The transaction this message is about.
    pub fn tx(&self) -> TxnId {
        match *self {
            TxMsg::ThreePc(m) => m.tx(),
            TxMsg::Paxos(m) => m.tx(),
            TxMsg::Prepare { spec } => spec.tx,
            TxMsg::Vote { tx, .. }
            | TxMsg::Decide { tx, .. }
            | TxMsg::Credit { tx, .. }
            | TxMsg::Ack { tx }
            | TxMsg::DecisionReq { tx } => tx,
        }
    }

    /// The money this message carries (only `Credit` carries any).
    pub fn money(&self) -> Option<(TxnId, Amount)> {
        match *self {
            TxMsg::Credit { tx, amount } => Some((tx, amount)),
            _ => None,
        }
    }
}

impl ThreeMsg {
    /// The transaction this message is about.
    pub fn tx(&self) -> TxnId {
        match *self {
            ThreeMsg::Prepare { spec } => spec.tx,
            ThreeMsg::PreCommit { tx }
            | ThreeMsg::PreCommitAck { tx }
            | ThreeMsg::DoCommit { tx }
            | ThreeMsg::StateReq { tx, .. }
            | ThreeMsg::DecisionReq { tx }
            | ThreeMsg::State { tx, .. } => tx,
        }
    }
}

impl PaxosMsg {
    /// The transaction this message is about.
    pub fn tx(&self) -> TxnId {
        match *self {
            PaxosMsg::Prepare { spec, .. } => spec.tx,
            PaxosMsg::Phase2a { tx, .. }
            | PaxosMsg::Phase2b { tx, .. }
            | PaxosMsg::Phase1a { tx, .. }
            | PaxosMsg::Phase1b { tx, .. }
            | PaxosMsg::DecisionReq { tx } => tx,
        }
    }
}

impl TxMsg {
    /// The word `Receive` prints for this message, and the trace's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            TxMsg::Prepare { .. } => "Prepare",
            TxMsg::Vote { .. } => "Vote",
            TxMsg::Decide { commit: true, .. } => "Commit",
            TxMsg::Decide { commit: false, .. } => "Abort",
            TxMsg::Credit { .. } => "Credit",
            TxMsg::Ack { .. } => "Ack",
            TxMsg::DecisionReq { .. } => "DecisionReq",
            TxMsg::ThreePc(m) => match m {
                ThreeMsg::Prepare { .. } => "Prepare",
                ThreeMsg::PreCommit { .. } => "PreCommit",
                ThreeMsg::PreCommitAck { .. } => "PreCommitAck",
                ThreeMsg::DoCommit { .. } => "DoCommit",
                ThreeMsg::StateReq { .. } => "StateReq",
                ThreeMsg::State { .. } => "State",
                ThreeMsg::DecisionReq { .. } => "DecisionReq",
            },
            TxMsg::Paxos(m) => match m {
                PaxosMsg::Prepare { .. } => "Prepare",
                PaxosMsg::Phase1a { .. } => "Phase1a",
                PaxosMsg::Phase1b { .. } => "Phase1b",
                PaxosMsg::Phase2a { .. } => "Phase2a",
                PaxosMsg::Phase2b { .. } => "Phase2b",
                PaxosMsg::DecisionReq { .. } => "DecisionReq",
            },
        }
    }
}

/// How a transfer ended, as its coordinator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
