//! A node's ends of its FIFO channels, as plain data: what arrived and waits for a
//! command to take it, the count and amounts of the Transfers each way (a restarted node
//! rebuilds them from its log), and live mode's resynchronisation.
//!
//! In live mode nobody but the two ends of a channel knows what is in it, so the ends
//! keep it whole across a crash themselves. Every Transfer a node sends to a peer is
//! numbered (its index in the node's sends to that peer); the receiver counts what has
//! arrived. On every new link, each end first tells the other how many of its Transfers
//! arrived and which payments it lacks (`Message::Resync`), and holds everything else
//! back; on the peer's `Resync` it sends the Transfers the peer lacks, the payments again,
//! then what it held, in order. A number that arrived before is dropped, so money is
//! neither lost with a dead process's socket nor applied twice.
//!
//! Pure: the node driver (`node`) moves the bytes.

use crate::ids::{Amount, NodeId, TxnId};
use crate::protocol::Record;
use crate::wire::{ChannelMsg, Message};
use rustc_hash::FxHashMap as HashMap;
use std::collections::{BTreeSet, VecDeque};

/// Every channel end of one node.
#[derive(Debug, Default)]
pub struct Channels {
    /// Messages that arrived on each incoming channel and were not delivered yet.
    arrived: HashMap<NodeId, VecDeque<ChannelMsg>>,
    /// How many links each peer has opened to this node (a restarted peer opens a new
    /// one); `Resend` waits for the link of the right generation.
    link_gen: HashMap<NodeId, u32>,
    /// Per peer: the amount of every Transfer sent to it, in order (a Transfer's number
    /// is its index).
    sent: HashMap<NodeId, Vec<Amount>>,
    /// Per peer: how many of its Transfers have arrived here.
    got: HashMap<NodeId, u64>,
    /// Other channel messages (markers, commit protocols) (sent, received), ever.
    other_msgs: (u64, u64),
    /// Live mode: per peer, how many of its Transfers this node last told it arrived.
    told: HashMap<NodeId, u64>,
    /// Live mode: per peer, how many of this node's Transfers it last said arrived (a
    /// load keeps only a window beyond that in flight).
    their_got: HashMap<NodeId, u64>,
    /// Live mode: peers whose `Resync` has not come yet, with what is held back for them.
    resyncing: HashMap<NodeId, Vec<Message>>,
    /// Live mode: peers whose process is gone.
    gone: BTreeSet<NodeId>,
}

impl Channels {
    /// The counts a restarted node finds in its log.
    pub fn from_log(records: &[Record]) -> Channels {
        let mut c = Channels::default();
        for rec in records {
            match *rec {
                Record::Sent { to, amount } => c.sent.entry(to).or_default().push(amount),
                Record::Deposited { from, .. } => *c.got.entry(from).or_default() += 1,
                _ => {}
            }
        }
        c
    }

    /// A new link from (or to) `peer`.
    pub fn linked(&mut self, peer: NodeId) {
        *self.link_gen.entry(peer).or_default() += 1;
    }

    /// How many links `peer` has opened with this node.
    pub fn link_gen(&self, peer: NodeId) -> u32 {
        self.link_gen.get(&peer).copied().unwrap_or(0)
    }

    /// A message arrived from `from`: counted.
    pub fn count_in(&mut self, from: NodeId, m: &ChannelMsg) {
        if let ChannelMsg::Transfer { .. } = m {
            *self.got.entry(from).or_default() += 1;
        } else {
            self.other_msgs.1 += 1;
        }
    }

    /// A message arrived and waits for a command to take it.
    pub fn queue(&mut self, from: NodeId, m: ChannelMsg) {
        self.arrived.entry(from).or_default().push_back(m);
    }

    /// Whether a message from `from` waits here.
    pub fn has_arrived(&self, from: NodeId) -> bool {
        self.arrived.get(&from).is_some_and(|q| !q.is_empty())
    }

    /// The message at the head of the channel from `from`, if any.
    pub fn head(&self, from: NodeId) -> Option<&ChannelMsg> {
        self.arrived.get(&from).and_then(|q| q.front())
    }

    /// Takes the head of the channel from `from`.
    pub fn take(&mut self, from: NodeId) -> Option<ChannelMsg> {
        self.arrived.get_mut(&from).and_then(|q| q.pop_front())
    }

    /// Everything that arrived and was not taken, channel by channel in id order (live
    /// mode delivers it now).
    pub fn take_all(&mut self) -> Vec<(NodeId, ChannelMsg)> {
        let mut peers: Vec<NodeId> = self.arrived.keys().copied().collect();
        peers.sort();
        let mut v = Vec::new();
        for p in peers {
            v.extend(self.arrived.remove(&p).unwrap_or_default().into_iter().map(|m| (p, m)));
        }
        v
    }

    /// A plain Send to `to` was logged (its number is its place in `sent`).
    pub fn record_sent(&mut self, to: NodeId, amount: Amount) {
        self.sent.entry(to).or_default().push(amount);
    }

    /// `msg` to `to` as it goes on the wire: in live mode a Transfer goes numbered (the
    /// last one logged to `to`).
    pub fn wire(&mut self, to: NodeId, msg: ChannelMsg, live: bool) -> Message {
        match msg {
            ChannelMsg::Transfer { amount } if live => {
                let seq = self.sent.get(&to).map_or(0, |v| v.len() as u64).saturating_sub(1);
                Message::Numbered { seq, amount }
            }
            other => {
                if !matches!(other, ChannelMsg::Transfer { .. }) {
                    self.other_msgs.0 += 1;
                }
                Message::Channel(other)
            }
        }
    }

    /// A numbered Transfer arrived: whether it is taken (each number once, in order; one
    /// that came before is dropped).
    pub fn take_numbered(&mut self, me: NodeId, from: NodeId, seq: u64) -> bool {
        let got = self.got.entry(from).or_default();
        if seq < *got {
            log::debug!("node {me}: Transfer {seq} from {from} came again; dropped");
            return false;
        }
        if seq > *got {
            log::error!(
                "node {me}: Transfer {seq} from {from} came before {got}: money went missing"
            );
            *got = seq;
        }
        true
    }

    /// What goes to `to` while it resynchronises waits; returns the message when it may
    /// go now.
    pub fn hold(&mut self, to: NodeId, wire: Message) -> Option<Message> {
        match self.resyncing.get_mut(&to) {
            Some(held) => {
                held.push(wire);
                None
            }
            None => Some(wire),
        }
    }

    /// Live mode: `to` has no link (its process is down): what goes to it waits for its
    /// next link.
    pub fn hold_for_down(&mut self, to: NodeId, wire: Message) {
        self.resyncing.entry(to).or_default().push(wire);
    }

    /// A new link with `p` in live mode: what to tell it first (how much of its money
    /// arrived, and which payments it owes here, `owed`), holding everything else back
    /// until it says the same.
    pub fn start_resync(&mut self, p: NodeId, owed: Vec<TxnId>) -> Message {
        let got = self.got.get(&p).copied().unwrap_or(0);
        self.told.insert(p, got);
        self.resyncing.entry(p).or_default();
        Message::Resync { got, owed }
    }

    /// `p` says `got` of this node's Transfers reached it; `credits` are the payments it
    /// lacks, made again. What to send it now, in order: the Transfers it lacks (before
    /// any held back), the payments, then what was held (so a snapshot marker sent since
    /// comes after them all and counts them in the channel).
    pub fn on_resync(&mut self, p: NodeId, got: u64, credits: Vec<Message>) -> Vec<Message> {
        let held = self.resyncing.remove(&p).unwrap_or_default();
        self.their_got.insert(p, got);
        self.gone.remove(&p);
        let sent = self.sent.get(&p).map_or(&[][..], |v| &v[..]);
        let first_held = held
            .iter()
            .find_map(|m| match m {
                Message::Numbered { seq, .. } => Some(*seq),
                _ => None,
            })
            .unwrap_or(sent.len() as u64);
        let again =
            (got..first_held).map(|seq| Message::Numbered { seq, amount: sent[seq as usize] });
        again.chain(credits).chain(held).collect()
    }

    /// Live mode: the peers to tell how many of their Transfers arrived (those with news,
    /// or `all`), among `linked`, with the count; each is told once per news.
    pub fn got_news(&mut self, linked: &[NodeId], all: bool) -> Vec<(NodeId, u64)> {
        let mut v = Vec::new();
        for &p in linked {
            let got = self.got.get(&p).copied().unwrap_or(0);
            let told = self.told.entry(p).or_default();
            if (all || got > *told) && !self.resyncing.contains_key(&p) {
                *told = got;
                v.push((p, got));
            }
        }
        v
    }

    /// `from` says `got` of this node's Transfers arrived there.
    pub fn on_got(&mut self, from: NodeId, got: u64) {
        let theirs = self.their_got.entry(from).or_default();
        *theirs = (*theirs).max(got);
    }

    /// Whether a load may send `p` another Transfer: fewer than `window` unconfirmed.
    pub fn has_room(&self, p: NodeId, window: u64) -> bool {
        let sent = self.sent.get(&p).map_or(0, |v| v.len() as u64);
        sent < self.their_got.get(&p).copied().unwrap_or(0) + window
    }

    /// Whether some peer's resync is not over.
    pub fn resyncing(&self) -> bool {
        !self.resyncing.is_empty()
    }

    /// `p`'s process is gone (`true`) or back.
    pub fn set_gone(&mut self, p: NodeId, gone: bool) {
        if gone {
            self.gone.insert(p);
        } else {
            self.gone.remove(&p);
        }
    }

    /// Whether `p`'s process is gone.
    pub fn is_gone(&self, p: NodeId) -> bool {
        self.gone.contains(&p)
    }

    /// The counts `Quiet` reports: Transfers sent and arrived per peer (by peer), and
    /// the other messages (sent, received).
    #[allow(clippy::type_complexity)]
    pub fn counts(&self) -> (Vec<(NodeId, u64)>, Vec<(NodeId, u64)>, (u64, u64)) {
        let mut sent: Vec<(NodeId, u64)> =
            self.sent.iter().map(|(&p, v)| (p, v.len() as u64)).collect();
        let mut got: Vec<(NodeId, u64)> = self.got.iter().map(|(&p, &n)| (p, n)).collect();
        sent.sort();
        got.sort();
        (sent, got, self.other_msgs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> NodeId {
        NodeId(i)
    }

    // A restarted node counts its channels from its log alone.
    #[test]
    fn counts_come_back_from_the_log() {
        let log = [
            Record::Opened { balance: Amount(9) },
            Record::Sent { to: n(2), amount: Amount(3) },
            Record::Deposited { from: n(2), amount: Amount(1) },
            Record::Sent { to: n(2), amount: Amount(4) },
        ];
        let c = Channels::from_log(&log);
        assert_eq!(c.counts(), (vec![(n(2), 2)], vec![(n(2), 1)], (0, 0)));
    }

    // Live numbering: each number is taken once; a copy that comes again is dropped.
    #[test]
    fn a_numbered_transfer_is_taken_once() {
        let mut c = Channels::default();
        assert!(c.take_numbered(n(1), n(2), 0));
        c.count_in(n(2), &ChannelMsg::Transfer { amount: Amount(5) });
        assert!(!c.take_numbered(n(1), n(2), 0), "a copy of number 0");
        assert!(c.take_numbered(n(1), n(2), 1));
    }

    // Resync: what the peer lacks first (below what was held back), then the payments,
    // then what was held, in order.
    #[test]
    fn a_resync_sends_the_missing_transfers_before_what_was_held() {
        let mut c = Channels::default();
        for a in [10, 20, 30] {
            c.record_sent(n(2), Amount(a));
        }
        let first = c.start_resync(n(2), vec![]);
        assert_eq!(first, Message::Resync { got: 0, owed: vec![] });
        let later = c.wire(n(2), ChannelMsg::Transfer { amount: Amount(30) }, true);
        assert!(c.hold(n(2), later.clone()).is_none(), "held while resyncing");
        let credit = Message::Hurry; // any message stands for a payment here
        let out = c.on_resync(n(2), 1, vec![credit.clone()]);
        let numbered = |seq, a| Message::Numbered { seq, amount: Amount(a) };
        assert_eq!(out, vec![numbered(1, 20), credit, later]);
        assert!(c.hold(n(2), Message::Hurry).is_some(), "the resync is over");
    }
}
