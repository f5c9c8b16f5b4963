//! Live mode at a node (SPEC chapter 7): delivery on arrival, loads the node generates
//! itself, and channels that survive a crash.
//!
//! In live mode nobody but the two ends of a channel knows what is in it, so the ends
//! keep it whole across a crash themselves. Every Transfer a node sends to a peer is
//! numbered (its index in the node's log of sends to that peer) and kept in `sent`;
//! the receiver counts what has arrived (`got`, rebuilt from its log of deposits). On
//! every new link, each end first tells the other how many of its Transfers arrived
//! (`Message::Resync`) and holds everything else back; on the peer's `Resync` it sends
//! the Transfers the peer lacks, then what it held, in order. A number that arrived
//! before is dropped, so money is neither lost with a dead process's socket nor applied
//! twice. Each end also lists the transactions whose money it lacks, and a debit side
//! that paid sends that money again. Other two-phase-commit messages lost that way are
//! replaced by the protocol itself (`Branch::on_timeout`, idempotent): at the resync, and
//! by live mode's timeouts (`Retry`).
//!
//! A load ([`Load`]) is generated here in batches between looks at the links. It keeps
//! channels short, so that a marker never waits behind a deep queue: at most
//! `SEND_WINDOW` Sends unconfirmed per channel (receivers say how many arrived with
//! `Message::Got`), at most `WINDOW` transfers in flight, and a pause while a snapshot
//! recorded here waits for markers.

use super::Node;
use crate::ids::{Amount, NodeId, TxnId};
use crate::rng::Rng;
use crate::wire::{
    AbortReason, ChannelMsg, LoadKind, LoadStats, Message, Peer, Protocol, Report, TxOutcome,
    TxSpec,
};
use std::io;
use std::time::{Duration, Instant};

/// How often a node running a load tells the master how far it got.
pub(super) const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Operations a load starts between two looks at the links.
const BATCH: usize = 1024;
/// Transfers one node's load keeps in flight at once.
const WINDOW: usize = 128;
/// The longest a load pauses for a snapshot recording at its node.
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// The longest a load pauses for a snapshot that is beginning (`Message::Hush`) and has
/// not reached this node whole: long enough for every node to have been scheduled on a
/// loaded host, short enough that a snapshot that lost a member does not stop the load.
const MAX_HUSH: Duration = Duration::from_millis(1000);
/// How long a load stays paused after this node has the whole of a hushed snapshot: the
/// `CollectState` that usually follows finds the nodes idle (8 nodes: 5 ms -> 1.5 ms).
const HUSH_GRACE: Duration = Duration::from_millis(20);
/// Transfers a load keeps unconfirmed on one channel.
const SEND_WINDOW: u64 = 256;
/// How long a load waits for money to arrive at an empty account before it goes on
/// (and its Send is refused).
const STARVED_WAIT: Duration = Duration::from_millis(20);
/// Load amounts are 1 to this.
const MAX_AMOUNT: usize = 10;
/// A load transaction's id: this bit set, then the load's number, the node, a counter.
const LOAD_TX: u64 = 1 << 63;
/// Operations one node may run in one load (the counter's width).
pub const MAX_OPS_PER_NODE: u64 = 1 << 24;

/// How often a node in live mode looks for transactions that wait too long.
const RETRY_EVERY: Duration = Duration::from_millis(300);

/// Live mode's timeouts: a transaction that waited at two looks in a row (so for
/// `RETRY_EVERY` at least) times out here (`TxNode::on_timeout`): a voting coordinator
/// aborts (`timeout`), a committed one sends its decision again, a participant asks.
/// Every such step is idempotent, so a message lost with a crashed process is replaced.
#[derive(Debug, Default)]
pub(super) struct Retry {
    next: Option<Instant>,
    waiting: Vec<TxnId>,
}

/// One node's share of a `Load`.
#[derive(Debug)]
pub(super) struct Load {
    asker: Peer,
    kind: LoadKind,
    /// The commit protocol of its transfers.
    protocol: Protocol,
    rng: Rng,
    /// Operations not started yet.
    left: u64,
    /// Transfers started and not decided yet.
    inflight: usize,
    /// Which: a decision counts once, and only for a transfer this node started (a 3PC
    /// termination leader or a Paxos Commit participant decides others' too).
    open: std::collections::BTreeSet<TxnId>,
    /// The first transaction id of this load at this node; the next is this plus `next`.
    base: u64,
    next: u64,
    stats: LoadStats,
    progress_at: Instant,
    /// Since when the load has found its account empty.
    starved: Option<Instant>,
    /// Since when the load has paused for a snapshot recording here.
    paused: Option<Instant>,
}

/// The id of operation `n` of load `load` at node `node`.
fn load_tx(load: u32, node: NodeId, n: u64) -> TxnId {
    TxnId(LOAD_TX | (u64::from(load & 0x7fff) << 48) | (u64::from(node.0 & 0xff_ffff) << 24) | n)
}

fn is_load_tx(tx: TxnId) -> bool {
    tx.0 & LOAD_TX != 0
}

impl Node {
    /// Tells every peer how many of its Transfers have arrived here: those with news
    /// (`all`: every peer, as on entering live mode).
    pub(super) fn tell_got(&mut self, all: bool) {
        for (&p, link) in self.links.iter_mut() {
            let Peer::Node(p) = p else { continue };
            let got = self.got.get(&p).copied().unwrap_or(0);
            let told = self.told.entry(p).or_default();
            if (all || got > *told) && !self.resyncing.contains_key(&p) {
                *told = got;
                link.push(&Message::Got { got });
            }
        }
    }

    pub(super) fn set_live(&mut self, on: bool) {
        self.live = on;
        if on {
            self.tell_got(true);
        }
        self.branch.set_live(on);
    }

    /// Delivers `m` from `from` now (live mode), as `Receive` would.
    pub(super) fn deliver_live(&mut self, from: NodeId, m: ChannelMsg) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.effects);
        let recorded = self.branch.on_deliver(from, m, &mut out);
        self.apply(&mut out, None)?;
        self.effects = out;
        if recorded.is_some() {
            // This node has just recorded a snapshot: its markers leave now, not after the
            // rest of what arrived (under a load, a snapshot waits on each node's markers
            // in turn).
            self.flush_all()?;
        }
        Ok(())
    }

    /// A numbered Transfer arrived: taken once, in number order.
    pub(super) fn arrive_numbered(
        &mut self,
        from: NodeId,
        seq: u64,
        amount: Amount,
    ) -> io::Result<()> {
        let got = self.got.entry(from).or_default();
        if seq < *got {
            log::debug!(
                "node {}: Transfer {seq} from {from} came again; dropped",
                self.branch.id()
            );
            return Ok(());
        }
        if seq > *got {
            log::error!(
                "node {}: Transfer {seq} from {from} came before {}: money went missing",
                self.branch.id(),
                *got
            );
            *got = seq;
        }
        self.arrive(from, ChannelMsg::Transfer { amount })
    }

    /// A new link with `p` (live mode): say how much of its money arrived, and hold
    /// everything back for it until it says the same (with what was held while it was
    /// down).
    pub(super) fn start_resync(&mut self, p: NodeId) {
        let got = self.got.get(&p).copied().unwrap_or(0);
        self.told.insert(p, got);
        let owed = self.branch.owed_by(p);
        log::debug!("node {}: resync with {p}: {got} of its Transfers arrived", self.branch.id());
        self.resyncing.entry(p).or_default();
        if let Some(link) = self.links.get_mut(&Peer::Node(p)) {
            link.push(&Message::Resync { got, owed });
        }
    }

    /// `p` says `got` of this node's Transfers reached it and which transactions' money
    /// it lacks: send the rest and that money again, then what was held back (all of it
    /// ahead of any marker sent since, so a snapshot counts it in the channel), and what
    /// `p`'s unfinished transactions with this node need.
    pub(super) fn on_resync(&mut self, p: NodeId, got: u64, owed: &[TxnId]) -> io::Result<()> {
        let held = self.resyncing.remove(&p).unwrap_or_default();
        self.their_got.insert(p, got);
        log::debug!(
            "node {}: {p} resynced ({got} arrived there); {} held",
            self.branch.id(),
            held.len()
        );
        self.gone.remove(&p);
        let sent = self.sent.get(&p).map_or(&[][..], |v| &v[..]);
        let first_held = held
            .iter()
            .find_map(|m| match m {
                Message::Numbered { seq, .. } => Some(*seq),
                _ => None,
            })
            .unwrap_or(sent.len() as u64);
        let again: Vec<Message> = (got..first_held)
            .map(|seq| Message::Numbered { seq, amount: sent[seq as usize] })
            .collect();
        if !again.is_empty() {
            log::info!("node {}: sending {} Transfers to {p} again", self.branch.id(), again.len());
        }
        let branch = &self.branch;
        let credits: Vec<Message> = owed
            .iter()
            .filter_map(|&tx| branch.paid_to(tx, p))
            .map(|m| Message::Channel(ChannelMsg::Commit(m)))
            .collect();
        for m in again.into_iter().chain(credits).chain(held) {
            self.send_wire(p, m)?;
        }
        let txs = self.branch.waiting_with(p);
        self.time_out(&txs, AbortReason::NodeDown)
    }

    /// Times out each of `txs` here (`Branch::on_timeout`), and carries out the effects.
    fn time_out(&mut self, txs: &[TxnId], reason: AbortReason) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.effects);
        let reach: Vec<NodeId> =
            self.branch.peers().iter().copied().filter(|p| !self.gone.contains(p)).collect();
        for &tx in txs {
            self.branch.on_timeout(tx, reason, &reach, &mut out);
        }
        self.apply(&mut out, None)?;
        self.effects = out;
        Ok(())
    }

    /// `p`'s process is gone (live mode): what this node waits for from it will not come
    /// (the protocols say what that means: two-phase commit's votes abort).
    pub(super) fn peer_gone(&mut self, p: NodeId) -> io::Result<()> {
        self.gone.insert(p);
        let mut out = std::mem::take(&mut self.effects);
        self.branch.on_peer_gone(p, &mut out);
        self.apply(&mut out, None)?;
        self.effects = out;
        Ok(())
    }

    /// Live mode: times out what has waited since the last look, if it is time to look.
    /// Returns how long until the next look (`None` outside live mode).
    pub(super) fn tick(&mut self) -> io::Result<Option<Duration>> {
        if !self.live {
            return Ok(None);
        }
        let now = Instant::now();
        let next = *self.retry.next.get_or_insert(now + RETRY_EVERY);
        if now < next {
            return Ok(Some(next - now));
        }
        let waiting = self.branch.waiting();
        let stale: Vec<TxnId> = waiting
            .iter()
            .copied()
            .filter(|t| self.retry.waiting.binary_search(t).is_ok())
            .collect();
        if !stale.is_empty() {
            log::debug!("node {}: {stale:?} timed out", self.branch.id());
        }
        self.time_out(&stale, AbortReason::Timeout)?;
        self.retry = Retry { next: Some(now + RETRY_EVERY), waiting };
        Ok(Some(RETRY_EVERY))
    }

    /// Whether this node has the whole of each snapshot: recorded, every marker in.
    pub(super) fn has_whole(&self, ids: &[crate::ids::SnapshotId]) -> bool {
        self.branch
            .collect(ids)
            .iter()
            .all(|r| r.recorded.as_ref().is_some_and(|st| st.open.is_empty()))
    }

    /// The answer to `Quiet`.
    pub(super) fn quiet(&self) -> Report {
        let mut sent: Vec<(NodeId, u64)> =
            self.sent.iter().map(|(&p, v)| (p, v.len() as u64)).collect();
        let mut got: Vec<(NodeId, u64)> = self.got.iter().map(|(&p, &n)| (p, n)).collect();
        sent.sort();
        got.sort();
        let waiting = self.branch.waiting();
        let busy = self.load.is_some()
            || !self.resyncing.is_empty()
            || !self.asks.is_empty()
            || !waiting.is_empty();
        if busy {
            log::debug!(
                "node {}: not quiet: load {}, resyncing {:?}, asked {:?}, waiting on {waiting:?}",
                self.branch.id(),
                self.load.is_some(),
                self.resyncing.keys().collect::<Vec<_>>(),
                self.asks.keys().collect::<Vec<_>>()
            );
        }
        Report::Quiet { sent, got, others: self.other_msgs, busy }
    }

    /// Answers the `Transfer` commands and counts the load transfers just decided.
    pub(super) fn on_decisions(&mut self) -> io::Result<()> {
        for (tx, outcome) in std::mem::take(&mut self.decisions) {
            if let Some((asker, seq)) = self.asks.remove(&tx) {
                let msg = self.decided(seq, tx, outcome);
                self.tell_decision(asker, &msg)?;
            } else if self.live && !is_load_tx(tx) {
                // A `Transfer … nowait` (or one finished after a restart): the master
                // learns its decision for TxStatus and Stats.
                self.tell_decision(Peer::Master, &Message::Decided { tx, outcome })?;
            } else if let Some(load) =
                self.load.as_mut().filter(|l| is_load_tx(tx) && l.open.contains(&tx))
            {
                load.open.remove(&tx);
                load.inflight -= 1;
                match outcome {
                    TxOutcome::Committed => load.stats.committed += 1,
                    TxOutcome::Aborted(r) => load.stats.abort(r),
                }
            }
        }
        self.end_load_if_done()
    }

    /// Pushes `msg` to `to` (the master or the observer): it tells decisions, or counts
    /// them, so it waits for the log's sync (see `told_decision`).
    fn tell_decision(&mut self, to: Peer, msg: &Message) -> io::Result<()> {
        self.told_decision = true;
        self.link(to)?.push(msg);
        Ok(())
    }

    pub(super) fn start_load(
        &mut self,
        asker: Peer,
        ops: u64,
        kind: LoadKind,
        seed: u64,
        load: u32,
        protocol: Protocol,
    ) {
        let base = load_tx(load, self.branch.id(), 0).0;
        self.load = Some(Load {
            asker,
            kind,
            protocol,
            rng: Rng::new(seed),
            left: ops.min(MAX_OPS_PER_NODE),
            inflight: 0,
            open: Default::default(),
            base,
            next: 0,
            stats: LoadStats::default(),
            progress_at: Instant::now() + PROGRESS_EVERY,
            starved: None,
            paused: None,
        });
    }

    /// Starts the load's next batch of operations, if it has any it may start now.
    /// Returns how long the node may wait for its links before the next batch: zero
    /// when it has more to start now, `None` when no load runs.
    pub(super) fn step_load(&mut self) -> io::Result<Option<Duration>> {
        let Some(mut load) = self.load.take() else { return Ok(None) };
        if let Some((k, since)) = self.hush {
            if self.has_whole(&[k]) && self.whole_at.is_none() {
                self.whole_at = Some(Instant::now());
            }
            let resume = self.whole_at.is_some_and(|t| t.elapsed() >= HUSH_GRACE);
            if resume || since.elapsed() >= MAX_HUSH {
                self.hush = None;
                self.whole_at = None;
            } else {
                // Every node pauses while the snapshot crosses the system: with 64 busy
                // processes on 2 cores, each of its steps would otherwise wait for a
                // scheduling round of the others (measured: 20-60 ms a step).
                let left = match self.whole_at {
                    Some(t) => HUSH_GRACE.saturating_sub(t.elapsed()),
                    None => MAX_HUSH.saturating_sub(since.elapsed()),
                };
                self.load = Some(load);
                return Ok(Some(left.max(Duration::from_micros(100))));
            }
        }
        if self.branch.snapshots().recording() {
            // A snapshot waits for markers here: the load pauses, so that they are not
            // queued behind its messages nor this process behind its work; for a while
            // only, as a snapshot that lost a member to a crash never completes.
            let since = *load.paused.get_or_insert_with(Instant::now);
            let left = MAX_PAUSE.saturating_sub(since.elapsed());
            if !left.is_zero() {
                self.load = Some(load);
                return Ok(Some(left));
            }
        } else {
            load.paused = None;
        }
        let me = self.branch.id();
        let peers: Vec<NodeId> = self.branch.peers().to_vec();
        let up: Vec<NodeId> = peers.iter().copied().filter(|p| !self.gone.contains(p)).collect();
        let mut out = std::mem::take(&mut self.effects);
        let mut started = 0;
        while load.left > 0 && started < BATCH && !peers.is_empty() {
            let transfer = match load.kind {
                LoadKind::Sends => false,
                LoadKind::Transfers => true,
                LoadKind::Mixed => load.rng.below(2) == 1,
            };
            let available = self.branch.available().0.min(MAX_AMOUNT as u64);
            if transfer {
                if load.inflight >= WINDOW {
                    break;
                }
                if up.is_empty() {
                    load.stats.abort(AbortReason::NodeDown);
                } else {
                    // Half push money to a peer, half pull from one (this node then
                    // coordinates as the credit side); an empty account only pulls. The
                    // amount is at most what is available here, so conflicts come from
                    // transactions running at once, not from asking the impossible.
                    let peer = up[load.rng.below(up.len())];
                    let push = available > 0 && load.rng.below(2) == 0;
                    let (from, to) = if push { (me, peer) } else { (peer, me) };
                    let amount = Amount(1 + load.rng.below(available.max(1) as usize) as u64);
                    let tx = TxnId(load.base + load.next);
                    load.next += 1;
                    load.inflight += 1;
                    load.open.insert(tx);
                    let spec = TxSpec::transfer(tx, from, to, amount, me);
                    self.branch.on_start(&spec, load.protocol, &mut out);
                }
            } else {
                if available == 0 {
                    // Nothing to spend: wait a while for money to arrive; if none comes,
                    // Sends are refused until some does.
                    let since = *load.starved.get_or_insert_with(Instant::now);
                    if since.elapsed() < STARVED_WAIT {
                        break;
                    }
                } else {
                    load.starved = None;
                }
                // A random peer, or the next with room in its window.
                let first = load.rng.below(peers.len());
                let room = |p: &NodeId| {
                    let sent = self.sent.get(p).map_or(0, |v| v.len() as u64);
                    sent < self.their_got.get(p).copied().unwrap_or(0) + SEND_WINDOW
                };
                let Some(to) =
                    (0..peers.len()).map(|i| peers[(first + i) % peers.len()]).find(room)
                else {
                    break; // every window is full: the peers' Got frees them
                };
                let amount = Amount(1 + load.rng.below(available.max(1) as usize) as u64);
                match self.branch.on_send(to, amount, &mut out) {
                    Ok(()) => load.stats.sent += 1,
                    Err(_) => load.stats.err_send += 1,
                }
            }
            load.left -= 1;
            started += 1;
        }
        if Instant::now() >= load.progress_at {
            load.progress_at = Instant::now() + PROGRESS_EVERY;
            self.tell_decision(load.asker, &Message::LoadProgress(load.stats))?;
        }
        // More to start now; or wait for the money being waited for (then go on), or for
        // what the links bring (decisions that free the window).
        let wait = match load.starved.map(|since| STARVED_WAIT.saturating_sub(since.elapsed())) {
            _ if started > 0 => Duration::ZERO,
            Some(left) if !left.is_zero() => left,
            _ => PROGRESS_EVERY,
        };
        self.load = Some(load);
        self.apply(&mut out, None)?;
        self.effects = out;
        self.end_load_if_done()?;
        Ok(self.load.as_ref().map(|_| wait))
    }

    fn end_load_if_done(&mut self) -> io::Result<()> {
        if let Some(load) = self.load.as_ref().filter(|l| l.left == 0 && l.inflight == 0) {
            let (asker, stats) = (load.asker, load.stats);
            self.load = None;
            self.tell_decision(asker, &Message::LoadDone(stats))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
