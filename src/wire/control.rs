//! The master's (and the observer's) commands to a node, and the node's answers.

use super::channel::ChannelMsg;
use super::commit::{AbortReason, AccountKey, CrashPoint, Protocol, TxOutcome, TxSpec, TxState};
use super::commit_msg::CommitMsg;
use super::observer::LocalReport;
use crate::ids::{AccountName, Amount, NodeId, SnapshotId, TxnId};
use serde::{Deserialize, Serialize};

/// A load transaction's id: this bit set, then the load's number, the node, a counter.
const LOAD_TX: u64 = 1 << 63;

/// Operations one node may run in one load (the width of its counter in a load
/// transaction's id).
pub const MAX_OPS_PER_NODE: u64 = 1 << 24;

/// The id of operation `n` of load `load` at node `node`: apart from every command's
/// `T<n>` and from every other load's and node's.
pub fn load_tx(load: u32, node: NodeId, n: u64) -> TxnId {
    TxnId(LOAD_TX | (u64::from(load & 0x7fff) << 48) | (u64::from(node.0 & 0xff_ffff) << 24) | n)
}

/// Whether `tx` is a load's transaction.
pub fn is_load_tx(tx: TxnId) -> bool {
    tx.0 & LOAD_TX != 0
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
    /// Transactions of a given number of parts over the accounts (SPEC chapter 11).
    Transactions,
}

impl LoadKind {
    /// Every kind.
    pub const ALL: [LoadKind; 4] =
        [LoadKind::Sends, LoadKind::Transfers, LoadKind::Mixed, LoadKind::Transactions];

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
            LoadKind::Transactions => "transactions",
        }
    }
}

/// One node's share of a `Load`: what to start, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadOrder {
    /// How many operations.
    pub ops: u64,
    /// Which operations.
    pub kind: LoadKind,
    /// The seed of this node's random choices.
    pub seed: u64,
    /// The id of this load (numbers its transactions apart from every other's).
    pub load: u32,
    /// The commit protocol of its transactions.
    pub protocol: Protocol,
    /// The parts of each transaction (`transactions <parts>`).
    pub parts: u8,
    /// The accounts its transactions draw from (`transactions`): the named accounts,
    /// or every node account when there are none.
    pub pool: Vec<(NodeId, AccountKey)>,
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
    /// The participants of the committed transactions, summed.
    pub parts: u64,
    /// How long the committed transactions took, start to decision at their
    /// coordinator.
    pub latency: Latency,
}

/// Latencies in buckets an eighth of an octave wide from 16 µs up (about 16 s), as
/// HdrHistogram keeps them with three significant bits: a quantile comes back within
/// 6% of the true value, and two histograms add bucket by bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    buckets: [[u32; 32]; 5],
}

impl Latency {
    const FLOOR_US: f64 = 16.0;
    const SUBS: usize = 8;

    /// Counts one latency of `d`.
    pub fn record(&mut self, d: std::time::Duration) {
        let v = (d.as_micros() as u64 / Self::FLOOR_US as u64).max(1);
        let octave = 63 - v.leading_zeros() as usize;
        let sub = ((v << 3) >> octave) as usize & (Self::SUBS - 1);
        let i = (octave * Self::SUBS + sub).min(32 * 5 - 1);
        let b = &mut self.buckets[i / 32][i % 32];
        *b = b.saturating_add(1);
    }

    /// Adds `other` into this.
    pub fn add(&mut self, other: &Latency) {
        for (a, b) in self.buckets.iter_mut().flatten().zip(other.buckets.iter().flatten()) {
            *a = a.saturating_add(*b);
        }
    }

    /// How many latencies were counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().flatten().map(|&b| u64::from(b)).sum()
    }

    /// The latency below which a share `q` (0 to 1) of those counted fall, in
    /// milliseconds (the middle of its bucket); `None` when none was counted.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, &b) in self.buckets.iter().flatten().enumerate() {
            seen += u64::from(b);
            if seen >= rank {
                let (octave, sub) = (i / Self::SUBS, (i % Self::SUBS) as f64);
                let base = Self::FLOOR_US * (1u64 << octave) as f64;
                let lo = base * (1.0 + sub / Self::SUBS as f64);
                let hi = base * (1.0 + (sub + 1.0) / Self::SUBS as f64);
                return Some((lo + hi) / 2.0 / 1000.0);
            }
        }
        None
    }
}

impl LoadStats {
    /// Adds `other` into this.
    pub fn add(&mut self, other: &LoadStats) {
        self.sent += other.sent;
        self.err_send += other.err_send;
        self.committed += other.committed;
        self.parts += other.parts;
        self.latency.add(&other.latency);
        for (a, b) in self.aborted.iter_mut().zip(other.aborted) {
            *a += b;
        }
    }

    /// Counts one transfer aborted for `reason`.
    pub fn abort(&mut self, reason: AbortReason) {
        self.aborted[reason.index()] += 1;
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
    Load(LoadOrder),
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
    /// Coordinate this transaction.
    Transfer {
        /// The transaction.
        spec: TxSpec,
        /// Its commit protocol.
        protocol: Protocol,
        /// Run it node to node: this node and the other participant deliver the
        /// transaction's messages as they arrive; the answer comes at the decision, and
        /// neither runs another command before it is done with the transaction. The master
        /// asks for this only when both channels between the two are empty and nothing can
        /// interfere (no fault, no trace); otherwise the answer comes after the first step
        /// and the master delivers the rest. In live mode the master sets it for
        /// every Transfer that waits: the answer comes at the decision, not at the start.
        drive: bool,
    },
    /// Open a named account here with new money (`CreateAccount`).
    OpenAccount {
        /// Its name.
        name: AccountName,
        /// Its opening balance.
        amount: Amount,
    },
    /// Report the balance, held money, and the state of `tx` here if given.
    Query {
        /// A transaction to report on.
        tx: Option<TxnId>,
    },
    /// Kill this process when it next reaches `point` (`CrashAt`).
    ArmCrash {
        /// The crash point.
        point: CrashPoint,
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
        /// The nodes this one can reach now (up, running, not cut off): the failure
        /// detector of three-phase commit's termination protocol.
        reach: Vec<NodeId>,
    },
    /// Report every transaction that ended here, with how (`Report::Ended`): `Check`
    /// holds them against the other nodes'.
    Ended,
    /// Report the commit-protocol costs this node measured since it last reported them
    /// (`Report::Costs`), for `Stats`.
    Costs,
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
        match self {
            Control::Send { predicted: Some(ok), .. } => Some(Prediction::Sent(*ok)),
            Control::Receive { predicted: Some(msg), .. } => {
                Some(Prediction::Received(msg.clone()))
            }
            _ => None,
        }
    }
}

/// An outcome the master's ledger predicts, so that the node need not answer: it answers
/// only when the outcome differs, and the master, which awaits no answer, stops there.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// What one protocol cost at one node: messages sent and forced writes (each sync that a
/// step's forced records of one transaction needed counts once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Messages sent.
    pub messages: u64,
    /// Forced writes.
    pub forced: u64,
}

/// A node's money as the master's ledger follows it: all of it, what transactions hold
/// of it, and what a plain `Send` may take (the node account's money not held).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// All money the node owns (its node account and its named accounts), held included.
    pub balance: Amount,
    /// What unfinished transactions hold of it.
    pub held: Amount,
    /// The node account's money not held: what a `Send` may take.
    pub spare: Amount,
}

/// One named account as `Balances` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// Its name.
    pub name: AccountName,
    /// Its money, held money included.
    pub balance: Amount,
    /// What unfinished transactions hold of it.
    pub held: Amount,
}

/// What a commit-protocol step did at a node, for the master's ledger and output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReport {
    /// Two-phase-commit messages sent, in order.
    pub sent: Vec<(NodeId, CommitMsg)>,
    /// The decisions this node took or re-reported in this step (a recovery may
    /// re-report several: one per transfer it coordinates).
    pub decided: Vec<(TxnId, TxOutcome)>,
    /// The node's money after the step.
    pub money: Money,
    /// Credits this step dropped: money of transfers this node aborted, which their
    /// coordinator committed (a three-phase commit split).
    pub dropped: Vec<(TxnId, Amount)>,
}

/// A node's answer to one [`Control`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// `Setup` or `AddPeer` done; after a restart, `Setup` reports what recovery sent.
    Ready(Option<Box<TxReport>>),
    /// The node reached its armed crash point and dies now; this is what the step it was
    /// running had done (messages sent and written) before it, and the costs it measured
    /// since it last reported them (as `Costs`).
    Crashed(Box<TxReport>, [Cost; 3]),
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
        /// What the step did, when the message was a commit-protocol message.
        tx: Option<Box<TxReport>>,
    },
    /// A commit-protocol step that was not a delivery: starting a transfer (at its
    /// coordinator) or a timeout.
    TxStep(Box<TxReport>),
    /// The answer to `Query`.
    State {
        /// The node's money.
        money: Money,
        /// Its named accounts, by name.
        accounts: Vec<AccountState>,
        /// The state of the transaction asked about.
        tx: Option<TxState>,
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
    /// The answer to `Ended`: (transaction, COMMITTED or ABORTED), by transaction.
    Ended(Vec<(TxnId, TxState)>),
    /// The answer to `Costs`: per protocol (in [`Protocol::ALL`] order), the messages
    /// this node sent and the forced writes (syncs) it made for transactions.
    Costs([Cost; 3]),
    /// The answer to `Quiet`.
    Quiet {
        /// Per peer: how many Transfers this node has sent it, ever.
        sent: Vec<(NodeId, u64)>,
        /// Per peer: how many Transfers from it have arrived here, ever.
        got: Vec<(NodeId, u64)>,
        /// Other channel messages (markers, commit protocols) sent and received here,
        /// ever: (sent, received).
        others: (u64, u64),
        /// A transaction here waits on something, a load runs, or a channel is being
        /// resynchronised.
        busy: bool,
    },
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    // Quantiles come back within the bucket's 6%, and histograms add.
    #[test]
    fn latency_quantiles_are_within_a_bucket() {
        let mut a = super::Latency::default();
        for ms in 1..=100u64 {
            a.record(Duration::from_micros(ms * 1000));
        }
        let p50 = a.quantile_ms(0.5).unwrap();
        let p99 = a.quantile_ms(0.99).unwrap();
        assert!((p50 - 50.0).abs() <= 50.0 * 0.07, "{p50}");
        assert!((p99 - 99.0).abs() <= 99.0 * 0.07, "{p99}");
        let mut b = super::Latency::default();
        b.record(Duration::from_micros(5));
        b.add(&a);
        assert_eq!(b.count(), 101);
        assert!(b.quantile_ms(0.0).unwrap() < 0.03);
        assert_eq!(super::Latency::default().quantile_ms(0.5), None);
    }

    use super::*;

    #[test]
    fn load_transaction_ids_are_apart_from_command_ones_and_each_other() {
        let a = load_tx(1, NodeId(2), 0);
        let b = load_tx(1, NodeId(3), 0);
        let c = load_tx(2, NodeId(2), 0);
        let d = load_tx(1, NodeId(2), MAX_OPS_PER_NODE - 1);
        assert!(is_load_tx(a) && !is_load_tx(TxnId(12345)));
        let all = [a, b, c, d];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert!(d.0 < b.0, "the counter stays inside its node's range");
    }
}
#[cfg(test)]
mod size {
    // Every frame a process reads becomes a `Message`, moved a few times on its way: a
    // variant that grows it (a latency histogram held inline made it 704 bytes, and the
    // scripted large8 run 10% slower) must be boxed.
    #[test]
    fn a_message_stays_small() {
        let sizes = [
            ("Message", std::mem::size_of::<crate::wire::Message>()),
            ("Control", std::mem::size_of::<super::Control>()),
            ("ChannelMsg", std::mem::size_of::<crate::wire::ChannelMsg>()),
        ];
        for (name, size) in sizes {
            assert!(size <= 128, "{name} is {size} bytes");
        }
    }
}
