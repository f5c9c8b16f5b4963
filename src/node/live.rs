//! Live mode at a node (SPEC chapter 7): every message delivered as it arrives, the
//! channels resynchronised on every new link (`channels`), the protocols' timeouts fired
//! by a clock, decisions reported to the master, and `Quiet`, which lets the master leave
//! live mode only once nothing moves.

use super::Node;
use crate::ids::{NodeId, SnapshotId, TxnId};
use crate::wire::{is_load_tx, AbortReason, ChannelMsg, Message, Peer, Report, TxOutcome};
use rustc_hash::FxHashMap as HashMap;
use std::io;
use std::time::{Duration, Instant};

/// How often a node in live mode looks for transactions that wait too long.
const RETRY_EVERY: Duration = Duration::from_millis(300);

/// A node's live-mode state.
#[derive(Debug, Default)]
pub struct Live {
    /// Every message is delivered as it arrives.
    pub on: bool,
    /// `Transfer` commands answered at their decision: who asked, the number.
    pub asks: HashMap<TxnId, (Peer, u64)>,
    /// The next look for transactions that wait too long, and what waited at the last
    /// one: a transaction waiting at two looks in a row (so for `RETRY_EVERY` at least)
    /// times out.
    retry: Option<(Instant, Vec<TxnId>)>,
    /// A snapshot is beginning (`Message::Hush`), and since when: a load pauses here
    /// until this node has the whole of it, or for a while.
    pub hush: Option<(SnapshotId, Instant)>,
    /// Since when this node has had the whole of the hushed snapshot.
    pub whole_at: Option<Instant>,
}

impl Live {
    /// Snapshot `snapshot` is beginning: a load pauses for it.
    pub fn hush(&mut self, snapshot: SnapshotId) {
        self.hush = Some((snapshot, Instant::now()));
    }
}

impl Node {
    /// Enters (`on`) or leaves live mode. On entering, every peer learns how many of its
    /// Transfers arrived, and what arrived under scripted delivery is delivered now, in
    /// channel order.
    pub(super) fn set_live(&mut self, on: bool) -> io::Result<()> {
        self.live.on = on;
        self.branch.set_live(on);
        if on {
            self.tell_got(true)?;
        }
        Ok(())
    }

    /// `Live on|off`.
    pub(super) fn live_on(&mut self, on: bool) -> io::Result<Report> {
        self.set_live(on)?;
        if on {
            for (p, m) in self.channels.take_all() {
                self.deliver_live(p, m)?;
            }
        }
        Ok(Report::Ready(None))
    }

    /// Tells the linked peers how many of their Transfers have arrived here: those with
    /// news (`all`: every one, as on entering live mode).
    pub(super) fn tell_got(&mut self, all: bool) -> io::Result<()> {
        let linked = self.outbox.nodes();
        for (p, got) in self.channels.got_news(&linked, all) {
            self.outbox.push(Peer::Node(p), &Message::Got { got }, false)?;
        }
        Ok(())
    }

    /// Delivers `m` from `from` now, as `Receive` would.
    pub(super) fn deliver_live(&mut self, from: NodeId, m: ChannelMsg) -> io::Result<()> {
        let mut recorded = None;
        self.step(None, |b, out| recorded = b.on_deliver(from, m, out))?;
        if recorded.is_some() {
            // This node has just recorded a snapshot: its markers leave now, not after the
            // rest of what arrived (under a load, a snapshot waits on each node's markers
            // in turn).
            self.flush()?;
        }
        Ok(())
    }

    /// A new link with `p`: say how much of its money arrived and which payments it owes,
    /// and hold everything else back for it until it says the same.
    pub(super) fn start_resync(&mut self, p: NodeId) {
        let owed = self.branch.owed_by(p);
        let msg = self.channels.start_resync(p, owed);
        log::debug!("node {}: resync with {p}: {msg:?}", self.branch.id());
        let _ = self.outbox.push_plain(Peer::Node(p), &msg);
    }

    /// `p` says `got` of this node's Transfers reached it and which payments it lacks:
    /// send the rest and those payments again, then what was held back, and time out
    /// what `p`'s unfinished transactions with this node need.
    pub(super) fn on_resync(&mut self, p: NodeId, got: u64, owed: &[TxnId]) -> io::Result<()> {
        let branch = &self.branch;
        let credits: Vec<Message> = owed
            .iter()
            .filter_map(|&tx| branch.paid_to(tx, p))
            .map(|m| Message::Channel(ChannelMsg::Commit(m)))
            .collect();
        for m in self.channels.on_resync(p, got, credits) {
            self.send_wire(p, m)?;
        }
        let txs = self.branch.waiting_with(p);
        self.time_out(&txs, AbortReason::NodeDown)
    }

    /// Times out each of `txs` here, knowing which peers are gone.
    fn time_out(&mut self, txs: &[TxnId], reason: AbortReason) -> io::Result<()> {
        let reach: Vec<NodeId> =
            self.branch.peers().iter().copied().filter(|&p| !self.channels.is_gone(p)).collect();
        self.step(None, |b, out| {
            for &tx in txs {
                b.on_timeout(tx, reason, &reach, out);
            }
        })
    }

    /// `p`'s process is gone: what this node waits for from it will not come (the
    /// protocols say what that means: two-phase commit's votes abort).
    pub(super) fn peer_gone(&mut self, p: NodeId) -> io::Result<()> {
        self.channels.set_gone(p, true);
        self.step(None, |b, out| b.on_peer_gone(p, out))
    }

    /// Times out what has waited since the last look, if it is time to look. Returns how
    /// long until the next look (`None` outside live mode).
    pub(super) fn tick(&mut self) -> io::Result<Option<Duration>> {
        if !self.live.on {
            return Ok(None);
        }
        let now = Instant::now();
        let (next, before) = self.live.retry.get_or_insert((now + RETRY_EVERY, Vec::new()));
        if now < *next {
            return Ok(Some(*next - now));
        }
        let waiting = self.branch.waiting();
        let stale: Vec<TxnId> =
            waiting.iter().copied().filter(|t| before.binary_search(t).is_ok()).collect();
        if !stale.is_empty() {
            log::debug!("node {}: {stale:?} timed out", self.branch.id());
        }
        self.time_out(&stale, AbortReason::Timeout)?;
        self.live.retry = Some((now + RETRY_EVERY, waiting));
        Ok(Some(RETRY_EVERY))
    }

    /// Whether this node has the whole of each snapshot: recorded, every marker in.
    pub(super) fn has_whole(&self, ids: &[SnapshotId]) -> bool {
        self.branch
            .collect(ids)
            .iter()
            .all(|r| r.recorded.as_ref().is_some_and(|st| st.open.is_empty()))
    }

    /// The answer to `Quiet`.
    pub(super) fn quiet(&self) -> Report {
        let (sent, got, others) = self.channels.counts();
        let waiting = self.branch.waiting();
        let busy = self.load.is_some()
            || self.channels.resyncing()
            || !self.live.asks.is_empty()
            || !waiting.is_empty();
        if busy {
            log::debug!(
                "node {}: not quiet: load {}, resyncing {}, asked {:?}, waiting on {waiting:?}",
                self.branch.id(),
                self.load.is_some(),
                self.channels.resyncing(),
                self.live.asks.keys().collect::<Vec<_>>()
            );
        }
        Report::Quiet { sent, got, others, busy }
    }

    /// Answers the `Transfer` commands and counts the load transfers just decided.
    pub(super) fn on_decisions(&mut self, decisions: Vec<(TxnId, TxOutcome)>) -> io::Result<()> {
        for (tx, outcome) in decisions {
            if let Some((asker, seq)) = self.live.asks.remove(&tx) {
                let msg = self.decided(seq, tx, outcome);
                self.tell_decision(asker, &msg)?;
            } else if self.live.on && !is_load_tx(tx) {
                // A `Transfer … nowait` (or one finished after a restart): the master
                // learns its decision for TxStatus and Stats.
                self.tell_decision(Peer::Master, &Message::Decided { tx, outcome })?;
            } else if let Some(load) = self.load.as_mut() {
                load.decided(tx, outcome);
            }
        }
        self.end_load_if_done()
    }

    /// Pushes `msg` to `to` (the master or the observer): it tells decisions, or counts
    /// them, so it waits for the log's sync.
    pub(super) fn tell_decision(&mut self, to: Peer, msg: &Message) -> io::Result<()> {
        self.outbox.told_decision();
        self.outbox.push_plain(to, msg)
    }
}
