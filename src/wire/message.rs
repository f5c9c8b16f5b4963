//! The message enums, one per conversation, inside the top-level [`Message`].
//!
//! * [`Hello`] opens every link and names the sender and the run it belongs to.
//! * [`Control`] is a command the master (or the observer, on the master's behalf) gives
//!   a node; every command carries the node's next sequence number, and the node runs
//!   its commands strictly in that order whoever relays them.
//! * [`Report`] is a node's answer to one command, sent back on the link it came from.
//! * [`ChannelMsg`] is what one node sends another on their FIFO channel.
//! * [`ObserverRequest`] / [`ObserverReply`] are the master's conversation with the observer.
//!
//! postcard is not self-describing: append variants, never reorder them.

use crate::ids::{Amount, NodeId, SnapshotId, TxnId};
use serde::{Deserialize, Serialize};

/// Who is at the other end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Peer {
    /// The master process.
    Master,
    /// The observer process.
    Observer,
    /// A node process.
    Node(NodeId),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Master => f.write_str("master"),
            Peer::Observer => f.write_str("observer"),
            Peer::Node(id) => write!(f, "node {id}"),
        }
    }
}

/// The first frame on every link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The run's random nonce: a connection that does not know it is refused.
    pub nonce: u64,
    /// Who is connecting.
    pub from: Peer,
}

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
}

impl TxMsg {
    /// The transaction this message is about.
    pub fn tx(&self) -> TxnId {
        match *self {
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

/// A message between two nodes on their FIFO channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelMsg {
    /// Money moving from the sender to the receiver.
    Transfer {
        /// How much.
        amount: Amount,
    },
    /// The Chandy–Lamport marker of one snapshot.
    Marker {
        /// Which snapshot.
        snapshot: SnapshotId,
    },
    /// A two-phase-commit message (SPEC chapter 5).
    Tx(TxMsg),
}

impl ChannelMsg {
    /// The money this message carries into its receiver's balance, if any: a Transfer's
    /// amount, or a credit's (`TxMsg::Credit`).
    pub fn money(&self) -> Option<Amount> {
        match self {
            ChannelMsg::Transfer { amount } => Some(*amount),
            ChannelMsg::Marker { .. } => None,
            ChannelMsg::Tx(m) => m.money().map(|(_, a)| a),
        }
    }
}

/// What a `Load` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadKind {
    /// Plain Sends.
    Sends,
    /// Two-phase-commit transfers.
    Transfers,
    /// Both, half and half.
    Mixed,
}

impl LoadKind {
    /// Every kind.
    pub const ALL: [LoadKind; 3] = [LoadKind::Sends, LoadKind::Transfers, LoadKind::Mixed];

    /// The kind a command-file word names, if any.
    pub fn from_word(word: &str) -> Option<LoadKind> {
        LoadKind::ALL.into_iter().find(|k| k.as_str() == word)
    }

    /// The command-file word.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadKind::Sends => "sends",
            LoadKind::Transfers => "transfers",
            LoadKind::Mixed => "mixed",
        }
    }
}

/// What one node's share of a load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadStats {
    /// Sends enqueued.
    pub sent: u64,
    /// Sends refused (short balance).
    pub err_send: u64,
    /// Transfers committed.
    pub committed: u64,
    /// Transfers aborted, by reason (in [`AbortReason::ALL`] order).
    pub aborted: [u64; 3],
}

impl LoadStats {
    /// Adds `other` into this.
    pub fn add(&mut self, other: &LoadStats) {
        self.sent += other.sent;
        self.err_send += other.err_send;
        self.committed += other.committed;
        for (a, b) in self.aborted.iter_mut().zip(other.aborted) {
            *a += b;
        }
    }

    /// Counts one transfer aborted for `reason`.
    pub fn abort(&mut self, reason: AbortReason) {
        let i = AbortReason::ALL.iter().position(|&r| r == reason).expect("ALL lists every reason");
        self.aborted[i] += 1;
    }

    /// Operations finished.
    pub fn done(&self) -> u64 {
        self.sent + self.err_send + self.committed + self.aborted.iter().sum::<u64>()
    }
}

/// A command to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// The first command of a new node: link to these peers and to the observer, then
    /// join (record at once) the snapshots still in progress.
    Setup {
        /// Every other node of the system, in creation order.
        peers: Vec<NodeId>,
        /// Snapshots in progress: the new node records its opening balance for each.
        join: Vec<SnapshotId>,
        /// Peers that are down: no link now; each links up when it restarts.
        down: Vec<NodeId>,
        /// After a restart: messages still queued from this node to a peer whose process
        /// restarted while this node was down, sent again first, in channel order.
        resend: Vec<(NodeId, Vec<ChannelMsg>)>,
        /// The system is in live mode: deliver on arrival, and resynchronise the channels
        /// with every peer (`Message::Resync`) before sending on them.
        live: bool,
    },
    /// Enter (`on`) or leave live mode. On entering, every message that has arrived and
    /// not been delivered is delivered now, and from then on each one as it arrives.
    /// The master leaves live mode only when every channel is empty and every
    /// transaction has ended.
    Live {
        /// Live or scripted.
        on: bool,
    },
    /// Run `ops` random operations of `kind` from this node (live mode); report progress
    /// with `Message::LoadProgress` and the end with `Message::LoadDone`.
    Load {
        /// How many operations.
        ops: u64,
        /// Which operations.
        kind: LoadKind,
        /// The seed of this node's random choices.
        seed: u64,
        /// The id of this load (numbers its transactions apart from every other's).
        load: u32,
    },
    /// Report the channel counters and whether anything is unfinished here
    /// (`Report::Quiet`), once every command before it has run.
    Quiet,
    /// A node was created: expect its link, and for each snapshot in `join` that this
    /// node has recorded, send that snapshot's marker on the new channel. Not answered
    /// (see [`Control::answered`]): nothing about it is unknown to the master, and a
    /// thousand-node mesh would cost half a million answers.
    AddPeer {
        /// The new node.
        peer: NodeId,
        /// Snapshots the new node joined at creation.
        join: Vec<SnapshotId>,
    },
    /// Debit `amount` and enqueue a Transfer to `to`, or refuse if the balance is short.
    Send {
        /// The receiving node.
        to: NodeId,
        /// How much.
        amount: Amount,
        /// What the master's ledger predicts (`Some(true)`: enqueued), when it does: the
        /// node then answers only if it did otherwise (a bug the master stops on).
        predicted: Option<bool>,
    },
    /// Take the head message of the channel `from` → this node.
    Receive {
        /// The sending node.
        from: NodeId,
        /// The message the master's ledger predicts, when it predicts the whole outcome
        /// (a Transfer or a marker that makes no recording): the node then answers only
        /// if it took something else, or recorded.
        predicted: Option<ChannelMsg>,
    },
    /// Record a new snapshot now (sent by the observer).
    BeginSnapshot {
        /// Its id.
        snapshot: SnapshotId,
    },
    /// Report what was recorded for these snapshots (sent by the observer).
    Collect {
        /// The snapshots asked for.
        snapshots: Vec<SnapshotId>,
        /// Live mode: answer only once this node has recorded each of them and every
        /// marker has come (markers are delivered as they arrive, so this ends).
        wait: bool,
    },
    /// Coordinate this transfer (two-phase commit).
    Transfer {
        /// The transfer.
        spec: TxSpec,
        /// Run it node to node: this node and the other participant deliver the
        /// transaction's messages as they arrive; the answer comes at the decision, and
        /// neither runs another command before it is done with the transaction. The master
        /// asks for this only when both channels between the two are empty and nothing can
        /// interfere (no fault, no trace); otherwise the answer comes after the first step
        /// and the master delivers the rest.
        drive: bool,
    },
    /// Report the balance, held money, and the state of `tx` here if given.
    Query {
        /// A transaction to report on.
        tx: Option<TxnId>,
    },
    /// Kill this process when it next reaches `point` (`CrashAt`).
    ArmCrash {
        /// The crash point.
        point: crate::protocol::two_pc::CrashPoint,
    },
    /// `to` restarted: send these messages, still in the channel to it, on the new link
    /// (the link of `to`'s `gen`-th process), before anything else.
    Resend {
        /// The restarted node.
        to: NodeId,
        /// Which start of `to` the link must come from (1 = the first process).
        gen: u32,
        /// The messages, in channel order.
        msgs: Vec<ChannelMsg>,
    },
    /// The head message of the channel `from` → this node is lost: drop it unread.
    Discard {
        /// The sending node.
        from: NodeId,
    },
    /// Time is up for `tx` here (SPEC chapter 5's logical timeouts).
    Timeout {
        /// The transaction.
        tx: TxnId,
        /// The abort reason if a coordinator aborts on it.
        reason: AbortReason,
    },
}

impl Control {
    /// Whether the node answers this command with a [`Report`]. Every command is, but
    /// `AddPeer` and the commands whose outcome the master predicts (see
    /// [`Control::prediction`]): the node runs them in their turn, and later commands run
    /// after them. Half a million answers to a thousand-node mesh's `AddPeer`s, and one
    /// per `Send` of a script, cost more than the rest of the run.
    pub fn answered(&self) -> bool {
        !matches!(self, Control::AddPeer { .. }) && self.prediction().is_none()
    }

    /// What the master predicts of this command's outcome, if it does.
    pub fn prediction(&self) -> Option<Prediction> {
        match *self {
            Control::Send { predicted: Some(ok), .. } => Some(Prediction::Sent(ok)),
            Control::Receive { predicted: Some(msg), .. } => Some(Prediction::Received(msg)),
            _ => None,
        }
    }
}

/// An outcome the master's ledger predicts, so that the node need not answer: it answers
/// only when the outcome differs, and the master, which awaits no answer, stops there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    /// A Send is enqueued (`true`) or refused.
    Sent(bool),
    /// A Receive takes this message and records nothing.
    Received(ChannelMsg),
}

impl Prediction {
    /// Whether `report` is what was predicted.
    pub fn holds(&self, report: &Report) -> bool {
        match (self, report) {
            (Prediction::Sent(true), Report::Sent) | (Prediction::Sent(false), Report::ErrSend) => {
                true
            }
            (Prediction::Received(m), Report::Received { msg, recorded: None, tx: None }) => {
                m == msg
            }
            _ => false,
        }
    }
}

/// What a two-phase-commit step did at a node, for the master's ledger and output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReport {
    /// Two-phase-commit messages sent, in order.
    pub sent: Vec<(NodeId, TxMsg)>,
    /// The decision, when this node coordinates and decided in this step.
    pub decided: Option<(TxnId, TxOutcome)>,
    /// The balance after the step, held money included.
    pub balance: Amount,
    /// Money held after the step.
    pub held: Amount,
}

/// How a transfer ended, as its coordinator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxOutcome {
    /// The decision is logged as commit.
    Committed,
    /// Aborted, and why.
    Aborted(AbortReason),
}

/// What a node recorded for one snapshot, as reported to the observer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalReport {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// `None` when this node has not recorded the snapshot yet.
    pub recorded: Option<RecordedState>,
}

/// A node's recorded state in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedState {
    /// The balance at the moment of recording.
    pub balance: Amount,
    /// Per incoming channel with money recorded in transit: (source, sum).
    pub channels: Vec<(NodeId, Amount)>,
    /// Incoming channels whose marker has not arrived yet.
    pub open: Vec<NodeId>,
}

/// A node's answer to one [`Control`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// `Setup` or `AddPeer` done; after a restart, `Setup` reports what recovery sent.
    Ready(Option<TxReport>),
    /// The node reached its armed crash point and dies now; this is what the step it was
    /// running had done (messages sent and written) before it.
    Crashed(TxReport),
    /// The Send was enqueued.
    Sent,
    /// The Send was refused: the balance is short. Nothing changed.
    ErrSend,
    /// The head message of the channel was taken.
    Received {
        /// The message.
        msg: ChannelMsg,
        /// The balance recorded, when this message made the node record (a first marker).
        recorded: Option<Amount>,
        /// What the step did, when the message was a two-phase-commit message.
        tx: Option<TxReport>,
    },
    /// A two-phase-commit step that was not a delivery: starting a transfer (at its
    /// coordinator) or a timeout.
    TxStep(TxReport),
    /// The answer to `Query`.
    State {
        /// All money owned, held money included.
        balance: Amount,
        /// Money held by transactions.
        held: Amount,
        /// The state of the transaction asked about, as `TxStatus` prints it.
        tx: Option<String>,
        /// Transactions this node waits on (in doubt, voting, or missing acks).
        waiting: Vec<TxnId>,
    },
    /// The node recorded a snapshot on `BeginSnapshot`, with this balance.
    Recorded {
        /// The balance recorded.
        balance: Amount,
    },
    /// The answer to `Collect`, one entry per snapshot asked for.
    Collected(Vec<LocalReport>),
    /// The answer to `Quiet`.
    Quiet {
        /// Per peer: how many Transfers this node has sent it, ever.
        sent: Vec<(NodeId, u64)>,
        /// Per peer: how many Transfers from it have arrived here, ever.
        got: Vec<(NodeId, u64)>,
        /// Other channel messages (markers, two-phase commit) sent and received here,
        /// ever: (sent, received).
        others: (u64, u64),
        /// A transaction here waits on something, a load runs, or a channel is being
        /// resynchronised.
        busy: bool,
    },
}

/// One snapshot as gathered by the observer, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalSnapshot {
    /// Its id.
    pub snapshot: SnapshotId,
    /// (node, recorded balance), by node id.
    pub nodes: Vec<(NodeId, Amount)>,
    /// (source, destination, money in transit), every ordered pair, by source then destination.
    pub channels: Vec<(NodeId, NodeId, Amount)>,
}

impl GlobalSnapshot {
    /// All the money it holds: node states plus channel states (`None` past `u64`).
    pub fn total(&self) -> Option<Amount> {
        let node = self.nodes.iter().map(|n| n.1);
        node.chain(self.channels.iter().map(|c| c.2))
            .try_fold(Amount::ZERO, |sum, a| sum.0.checked_add(a.0).map(Amount))
    }
}

/// A snapshot that could not be gathered, with the channels whose marker is still missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incomplete {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// (source, destination) of every channel still open, by source then destination.
    pub open: Vec<(NodeId, NodeId)>,
}

/// The master's requests to the observer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObserverRequest {
    /// Tell `node` to record snapshot `snapshot`, as its command number `seq`.
    Begin {
        /// The new snapshot's id.
        snapshot: SnapshotId,
        /// The initiator.
        node: NodeId,
        /// The initiator's sequence number for this command.
        seq: u64,
    },
    /// Node `node` restarted: before the next request, wait for its link from its
    /// `gen`-th process (an older link leads to a dead process).
    Relink {
        /// The restarted node.
        node: NodeId,
        /// Its process count.
        gen: u32,
    },
    /// Gather these snapshots from every node; `seqs` gives each node's sequence number.
    Collect {
        /// (snapshot, its members).
        snapshots: Vec<(SnapshotId, Vec<NodeId>)>,
        /// (node, sequence number) for every node of the system.
        seqs: Vec<(NodeId, u64)>,
        /// Live mode: each node answers once it has the whole of each snapshot.
        wait: bool,
    },
}

/// The observer's answers, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObserverReply {
    /// The observer holds the restarted node's new link.
    Relinked,
    /// The initiator recorded this balance.
    Started {
        /// The balance the initiator recorded.
        balance: Amount,
    },
    /// Every snapshot asked for, gathered.
    Collected(Vec<GlobalSnapshot>),
    /// At least one snapshot is not complete; nothing was gathered.
    NotComplete(Vec<Incomplete>),
}

/// Everything that travels on a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First frame of every link.
    Hello(Hello),
    /// A command to a node, with the node's sequence number.
    Control {
        /// Position in the node's command order.
        seq: u64,
        /// The command.
        cmd: Control,
    },
    /// A node's answer to the command with this sequence number.
    Report {
        /// The command's sequence number.
        seq: u64,
        /// The answer.
        report: Report,
    },
    /// Node to node.
    Channel(ChannelMsg),
    /// Node to node, ahead of a driven transaction's first message on the link: deliver
    /// this transaction's messages as they arrive, and run no command before sending
    /// the last message of it (a NO vote, or the ack).
    Drive {
        /// The transaction.
        tx: TxnId,
    },
    /// Node to node: a command waits here until this node's driven transactions with
    /// the peer are acked; the peer syncs its log and sends the acks it holds back.
    Hurry,
    /// Node to node, live mode: the Transfer numbered `seq` on this channel (its
    /// sender's `seq`-th Transfer to the receiver, counted from 0). A receiver takes
    /// each number once, so a Transfer sent again after a crash is never applied twice.
    Numbered {
        /// Its number.
        seq: u64,
        /// How much.
        amount: Amount,
    },
    /// Node to node, live mode, first on a new link: this many of the peer's Transfers
    /// have arrived here; the peer sends the rest again, then what it held back.
    Resync {
        /// Transfers from the peer that arrived here.
        got: u64,
        /// Transactions whose money the peer owes here (this node voted YES as their
        /// credit side and has not been credited): a debit side that paid sends it again.
        owed: Vec<TxnId>,
    },
    /// Node to node, live mode: this many of the peer's Transfers have arrived here (a
    /// sender keeps a bounded number unconfirmed).
    Got {
        /// Transfers from the peer that arrived here.
        got: u64,
    },
    /// Node to master, live mode: this node decided `tx` as its coordinator and no
    /// command waits for the answer.
    Decided {
        /// The transaction.
        tx: TxnId,
        /// The decision.
        outcome: TxOutcome,
    },
    /// Node to master: progress of this node's share of a load.
    LoadProgress(LoadStats),
    /// Node to master: this node's share of a load is done.
    LoadDone(LoadStats),
    /// Master to observer.
    ObserverRequest(ObserverRequest),
    /// Observer to master.
    ObserverReply(ObserverReply),
    /// Master to node, live mode, outside the command order: snapshot `snapshot` is
    /// beginning. A node running a load pauses it until it has the whole snapshot (or
    /// for a while), so that markers do not wait for busy processes to be scheduled.
    Hush {
        /// The snapshot.
        snapshot: SnapshotId,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    // A predicted command goes unanswered unless the node's outcome differs; AddPeer is
    // never answered; everything else always is.
    #[test]
    fn predictions_decide_which_commands_are_answered() {
        let (to, amount) = (NodeId(2), Amount(5));
        let send = |predicted| Control::Send { to, amount, predicted };
        assert!(send(None).answered());
        assert!(!send(Some(true)).answered());
        assert!(!Control::AddPeer { peer: to, join: vec![] }.answered());
        assert!(Control::Query { tx: None }.answered());
        let ok = Prediction::Sent(true);
        assert!(ok.holds(&Report::Sent) && !ok.holds(&Report::ErrSend));
        assert!(Prediction::Sent(false).holds(&Report::ErrSend));
        let msg = ChannelMsg::Transfer { amount };
        let got = |msg, recorded| Report::Received { msg, recorded, tx: None };
        let p = Control::Receive { from: to, predicted: Some(msg) }.prediction().unwrap();
        assert!(p.holds(&got(msg, None)));
        assert!(!p.holds(&got(msg, Some(Amount(1)))), "a recording was not predicted");
        assert!(!p.holds(&got(ChannelMsg::Transfer { amount: Amount(6) }, None)));
        assert!(!p.holds(&Report::Sent));
        assert_eq!(Control::Receive { from: to, predicted: None }.prediction(), None);
    }

    // The vocabulary's helpers: which message is about which transfer and carries what.
    #[test]
    fn messages_say_their_transfer_and_their_money() {
        let spec = TxSpec {
            tx: TxnId(4),
            from: NodeId(1),
            to: NodeId(2),
            amount: Amount(30),
            coord: NodeId(3),
        };
        assert_eq!(spec.credit(), TxMsg::Credit { tx: TxnId(4), amount: Amount(30) });
        assert_eq!(spec.participants(), [NodeId(1), NodeId(2)]);
        let all = [
            TxMsg::Prepare { spec },
            TxMsg::Vote { tx: TxnId(4), no: None },
            TxMsg::Decide { tx: TxnId(4), commit: true },
            TxMsg::Credit { tx: TxnId(4), amount: Amount(30) },
            TxMsg::Ack { tx: TxnId(4) },
            TxMsg::DecisionReq { tx: TxnId(4) },
        ];
        for m in all {
            assert_eq!(m.tx(), TxnId(4), "{m:?}");
            let money = matches!(m, TxMsg::Credit { .. }).then_some((TxnId(4), Amount(30)));
            assert_eq!(m.money(), money, "{m:?}");
            assert_eq!(ChannelMsg::Tx(m).money(), money.map(|m| m.1));
        }
        assert_eq!(ChannelMsg::Transfer { amount: Amount(9) }.money(), Some(Amount(9)));
        assert_eq!(ChannelMsg::Marker { snapshot: SnapshotId(1) }.money(), None);
        let words: Vec<&str> = AbortReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(words, ["insufficient-funds", "node-down", "timeout"]);
        for k in LoadKind::ALL {
            assert_eq!(LoadKind::from_word(k.as_str()), Some(k));
        }
        assert_eq!(LoadKind::from_word("busy"), None);
        assert_eq!(Peer::Node(NodeId(3)).to_string(), "node 3");
        assert_eq!(
            (Peer::Master.to_string(), Peer::Observer.to_string()),
            ("master".into(), "observer".into())
        );
    }

    // A load's counters add up, each abort in its reason's slot.
    #[test]
    fn load_stats_add_up() {
        let mut a = LoadStats { sent: 1, err_send: 2, committed: 3, aborted: [0, 0, 0] };
        a.abort(AbortReason::NodeDown);
        a.abort(AbortReason::Timeout);
        a.abort(AbortReason::Timeout);
        assert_eq!(a.aborted, [0, 1, 2]);
        assert_eq!(a.done(), 9);
        let mut b = LoadStats::default();
        b.add(&a);
        b.add(&a);
        assert_eq!(b, LoadStats { sent: 2, err_send: 4, committed: 6, aborted: [0, 2, 4] });
    }

    // A snapshot's total, and the overflow it refuses to hide.
    #[test]
    fn a_snapshot_totals_its_nodes_and_channels() {
        let snap = GlobalSnapshot {
            snapshot: SnapshotId(0),
            nodes: vec![(NodeId(1), Amount(5)), (NodeId(2), Amount(7))],
            channels: vec![(NodeId(1), NodeId(2), Amount(3)), (NodeId(2), NodeId(1), Amount(0))],
        };
        assert_eq!(snap.total(), Some(Amount(15)));
        let huge = GlobalSnapshot { nodes: vec![(NodeId(1), Amount(u64::MAX))], ..snap.clone() };
        assert_eq!(huge.total(), None);
    }
}
