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

pub use super::channel::*;
pub use super::commit::*;
pub use super::commit_msg::*;
pub use super::control::*;
pub use super::observer::*;

/// Who is at the other end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    LoadProgress(Box<LoadStats>),
    /// Node to master: this node's share of a load is done.
    LoadDone(Box<LoadStats>),
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
    /// Master to node, on several hosts (SPEC chapter 10), before any command: where
    /// the observer and every node listen, to dial them.
    Directory {
        /// The observer's `address:port`.
        observer: String,
        /// Each node's `address:port`.
        nodes: Vec<(NodeId, String)>,
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
        let p = Control::Receive { from: to, predicted: Some(msg.clone()) }.prediction().unwrap();
        assert!(p.holds(&got(msg.clone(), None)));
        assert!(!p.holds(&got(msg, Some(Amount(1)))), "a recording was not predicted");
        assert!(!p.holds(&got(ChannelMsg::Transfer { amount: Amount(6) }, None)));
        assert!(!p.holds(&Report::Sent));
        assert_eq!(Control::Receive { from: to, predicted: None }.prediction(), None);
    }

    // The vocabulary's helpers: which message is about which transfer and carries what.
    #[test]
    fn messages_say_their_transfer_and_their_money() {
        let spec = TxSpec::transfer(TxnId(4), NodeId(1), NodeId(2), Amount(30), NodeId(3));
        let pay = Payment { from: NodeId(1), to: NodeId(2), amount: Amount(30) };
        assert_eq!(spec.payments(), vec![pay]);
        assert_eq!(spec.participants().collect::<Vec<_>>(), [NodeId(1), NodeId(2)]);
        assert_eq!(spec.members(), [NodeId(1), NodeId(2), NodeId(3)]);
        assert!(spec.is_valid());
        let all = [
            CommitMsg::TwoPc(TwoPcMsg::Prepare { spec: spec.clone() }),
            CommitMsg::TwoPc(TwoPcMsg::Vote { tx: TxnId(4), no: None }),
            CommitMsg::ThreePc(ThreeMsg::Decide { tx: TxnId(4), commit: true }),
            CommitMsg::Credit { tx: TxnId(4), amount: Amount(30) },
            CommitMsg::Paxos(PaxosMsg::Ack { tx: TxnId(4) }),
            CommitMsg::TwoPc(TwoPcMsg::DecisionReq { tx: TxnId(4) }),
        ];
        for m in all {
            assert_eq!(m.tx(), TxnId(4), "{m:?}");
            let money = matches!(m, CommitMsg::Credit { .. }).then_some((TxnId(4), Amount(30)));
            assert_eq!(m.money(), money, "{m:?}");
            assert_eq!(ChannelMsg::Commit(m).money(), money.map(|m| m.1));
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
        let mut a = LoadStats { sent: 1, err_send: 2, committed: 3, ..LoadStats::default() };
        a.abort(AbortReason::NodeDown);
        a.abort(AbortReason::Timeout);
        a.abort(AbortReason::Timeout);
        assert_eq!(a.aborted, [0, 1, 2]);
        assert_eq!(a.done(), 9);
        let mut b = LoadStats::default();
        b.add(&a);
        b.add(&a);
        assert_eq!(
            b,
            LoadStats {
                sent: 2,
                err_send: 4,
                committed: 6,
                aborted: [0, 2, 4],
                ..LoadStats::default()
            }
        );
    }

    // A snapshot's total, and the overflow it refuses to hide.
    #[test]
    fn a_snapshot_totals_its_nodes_and_channels() {
        let snap = GlobalSnapshot {
            snapshot: SnapshotId(0),
            nodes: vec![(NodeId(1), Amount(5)), (NodeId(2), Amount(7))],
            channels: vec![(NodeId(1), NodeId(2), Amount(3)), (NodeId(2), NodeId(1), Amount(0))],
            accounts: Vec::new(),
        };
        assert_eq!(snap.total(), Some(Amount(15)));
        let huge = GlobalSnapshot { nodes: vec![(NodeId(1), Amount(u64::MAX))], ..snap.clone() };
        assert_eq!(huge.total(), None);
    }
}
