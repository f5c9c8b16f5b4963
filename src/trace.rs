//! `--trace FILE`: every event as one JSON object per line (SPEC chapter 6).
//!
//! The master writes the trace in command order from the nodes' own reports, so a
//! checker can replay it against the command file (`tests/util` does).

use crate::ids::{AccountName, Amount, NodeId, SnapshotId, TxnId};
use crate::wire::{Accept, ChannelMsg, CommitMsg, PaxosMsg, ThreeMsg};
use std::fmt::Write;

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// `StartMaster` started a new system: node and snapshot ids start afresh.
    Start,
    /// A node was created with a balance.
    Create {
        /// The node.
        node: NodeId,
        /// Its opening balance.
        balance: Amount,
    },
    /// A named account was opened on a node, with new money (SPEC chapter 11).
    Account {
        /// The node that holds it.
        node: NodeId,
        /// Its name.
        name: AccountName,
        /// Its opening balance.
        balance: Amount,
    },
    /// A message was enqueued on a channel.
    Send {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// The message.
        msg: ChannelMsg,
    },
    /// A Send was refused.
    ErrSend {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// The amount asked for.
        amount: Amount,
    },
    /// A message was taken from the head of a channel.
    Deliver {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// The message.
        msg: ChannelMsg,
    },
    /// The head of a channel was lost (`Lose`).
    Lose {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// The message lost.
        msg: ChannelMsg,
    },
    /// A node's process died (`Crash`, or a `CrashAt` point).
    Crash {
        /// The node.
        node: NodeId,
    },
    /// A node's process was restarted from its log.
    Restart {
        /// The node.
        node: NodeId,
    },
    /// A node's process was stopped (`Pause`).
    Pause {
        /// The node.
        node: NodeId,
    },
    /// A paused node's process was continued (`Resume`).
    Resume {
        /// The node.
        node: NodeId,
    },
    /// `Partition`: these nodes were cut off from all others.
    Partition {
        /// The nodes cut off, by id.
        nodes: Vec<NodeId>,
    },
    /// `Heal`: every partition ended.
    Heal,
    /// The money a node holds for unfinished transactions changed to `amount`.
    Held {
        /// The node.
        node: NodeId,
        /// What it holds now.
        amount: Amount,
    },
    /// A credit reached a node that had aborted its transfer, which its coordinator
    /// committed (a three-phase commit split): the money it carried is gone.
    Drop {
        /// The node.
        node: NodeId,
        /// The transaction.
        tx: TxnId,
        /// The money lost.
        amount: Amount,
    },
    /// `CollectState` gathered a snapshot (one event per snapshot, in id order).
    Collect {
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// A node recorded its state for a snapshot.
    Record {
        /// The node.
        node: NodeId,
        /// The snapshot.
        snapshot: SnapshotId,
        /// The balance recorded.
        balance: Amount,
    },
}

fn msg_fields(s: &mut String, msg: &ChannelMsg) {
    let _ = match msg {
        ChannelMsg::Transfer { amount } => write!(s, ",\"kind\":\"Transfer\",\"amount\":{amount}"),
        ChannelMsg::Commit(m) => {
            let _ = write!(s, ",\"kind\":\"{}\",\"tx\":{}", m.kind(), m.tx().0);
            match m {
                CommitMsg::Credit { amount, .. } => write!(s, ",\"amount\":{amount}"),
                CommitMsg::ThreePc(ThreeMsg::State { state, .. }) => {
                    write!(s, ",\"state\":\"{}\"", state.word())
                }
                CommitMsg::Paxos(p) => paxos_fields(s, p),
                m => match m.no_vote() {
                    Some(r) => write!(s, ",\"no\":\"{}\"", r.as_str()),
                    None => Ok(()),
                },
            }
        }
        ChannelMsg::Marker { snapshot } => {
            write!(s, ",\"kind\":\"Marker\",\"snapshot\":{snapshot}")
        }
    };
}

/// A Paxos Commit message's ballot and values, as trace fields.
fn paxos_fields(s: &mut String, m: &PaxosMsg) -> std::fmt::Result {
    let one = |a: &Accept| {
        format!(
            "{{\"inst\":{},\"ballot\":[{},{}],\"prepared\":{}}}",
            a.inst, a.bal.n, a.bal.node, a.prepared
        )
    };
    let list = |v: &[Option<Accept>]| {
        let items: Vec<String> = v.iter().flatten().map(one).collect();
        format!("[{}]", items.join(","))
    };
    match m {
        PaxosMsg::Prepare { own: Some(a), .. } => write!(s, ",\"vote\":{}", one(a)),
        PaxosMsg::Prepare { own: None, .. } => Ok(()),
        PaxosMsg::Phase2a { accept, .. } => write!(s, ",\"accept\":{}", one(accept)),
        PaxosMsg::Phase2b { accepted, vote, .. } => {
            write!(s, ",\"accepted\":{}", list(accepted))?;
            vote.as_ref().map_or(Ok(()), |a| write!(s, ",\"vote\":{}", one(a)))
        }
        PaxosMsg::Phase1a { bal, .. } => write!(s, ",\"ballot\":[{},{}]", bal.n, bal.node),
        PaxosMsg::Phase1b { bal, last, .. } => {
            write!(s, ",\"ballot\":[{},{}],\"last\":{}", bal.n, bal.node, list(last))
        }
        PaxosMsg::DecisionReq { .. } | PaxosMsg::Decide { .. } | PaxosMsg::Ack { .. } => Ok(()),
    }
}

impl TraceEvent {
    /// The event as one JSON line (without the newline).
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(64);
        let _ = match self {
            TraceEvent::Start => write!(s, "{{\"ev\":\"start\""),
            TraceEvent::Lose { from, to, msg } => {
                let _ = write!(s, "{{\"ev\":\"lose\",\"from\":{from},\"to\":{to}");
                msg_fields(&mut s, msg);
                Ok(())
            }
            TraceEvent::Crash { node } => write!(s, "{{\"ev\":\"crash\",\"node\":{node}"),
            TraceEvent::Restart { node } => write!(s, "{{\"ev\":\"restart\",\"node\":{node}"),
            TraceEvent::Pause { node } => write!(s, "{{\"ev\":\"pause\",\"node\":{node}"),
            TraceEvent::Resume { node } => write!(s, "{{\"ev\":\"resume\",\"node\":{node}"),
            TraceEvent::Partition { nodes } => {
                let ids: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
                write!(s, "{{\"ev\":\"partition\",\"nodes\":[{}]", ids.join(","))
            }
            TraceEvent::Heal => write!(s, "{{\"ev\":\"heal\""),
            TraceEvent::Held { node, amount } => {
                write!(s, "{{\"ev\":\"held\",\"node\":{node},\"amount\":{amount}")
            }
            TraceEvent::Drop { node, tx, amount } => {
                write!(s, "{{\"ev\":\"drop\",\"node\":{node},\"tx\":{},\"amount\":{amount}", tx.0)
            }
            TraceEvent::Create { node, balance } => {
                write!(s, "{{\"ev\":\"create\",\"node\":{node},\"balance\":{balance}")
            }
            TraceEvent::Account { node, name, balance } => write!(
                s,
                "{{\"ev\":\"account\",\"node\":{node},\"name\":\"{name}\",\"balance\":{balance}"
            ),
            TraceEvent::Send { from, to, msg } => {
                let _ = write!(s, "{{\"ev\":\"send\",\"from\":{from},\"to\":{to}");
                msg_fields(&mut s, msg);
                Ok(())
            }
            TraceEvent::ErrSend { from, to, amount } => {
                write!(s, "{{\"ev\":\"err_send\",\"from\":{from},\"to\":{to},\"amount\":{amount}")
            }
            TraceEvent::Deliver { from, to, msg } => {
                let _ = write!(s, "{{\"ev\":\"deliver\",\"from\":{from},\"to\":{to}");
                msg_fields(&mut s, msg);
                Ok(())
            }
            TraceEvent::Collect { snapshot } => {
                write!(s, "{{\"ev\":\"collect\",\"snapshot\":{snapshot}")
            }
            TraceEvent::Record { node, snapshot, balance } => write!(
                s,
                "{{\"ev\":\"record\",\"node\":{node},\"snapshot\":{snapshot},\"balance\":{balance}"
            ),
        };
        s.push('}');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_match_the_spec_examples() {
        let (a, b) = (NodeId(1), NodeId(2));
        let t = ChannelMsg::Transfer { amount: Amount(300) };
        let m = ChannelMsg::Marker { snapshot: SnapshotId(0) };
        let cases = [
            (
                TraceEvent::Create { node: a, balance: Amount(1000) },
                r#"{"ev":"create","node":1,"balance":1000}"#,
            ),
            (
                TraceEvent::Send { from: a, to: b, msg: t.clone() },
                r#"{"ev":"send","from":1,"to":2,"kind":"Transfer","amount":300}"#,
            ),
            (
                TraceEvent::Send { from: a, to: b, msg: m.clone() },
                r#"{"ev":"send","from":1,"to":2,"kind":"Marker","snapshot":0}"#,
            ),
            (
                TraceEvent::ErrSend { from: a, to: b, amount: Amount(5000) },
                r#"{"ev":"err_send","from":1,"to":2,"amount":5000}"#,
            ),
            (
                TraceEvent::Deliver { from: a, to: b, msg: t },
                r#"{"ev":"deliver","from":1,"to":2,"kind":"Transfer","amount":300}"#,
            ),
            (
                TraceEvent::Deliver { from: a, to: b, msg: m },
                r#"{"ev":"deliver","from":1,"to":2,"kind":"Marker","snapshot":0}"#,
            ),
            (
                TraceEvent::Record { node: b, snapshot: SnapshotId(0), balance: Amount(1100) },
                r#"{"ev":"record","node":2,"snapshot":0,"balance":1100}"#,
            ),
        ];
        for (ev, want) in cases {
            assert_eq!(ev.to_json(), want);
        }
    }
}
