//! A node's share of a `Load` (SPEC chapter 7): random operations started here in
//! batches between looks at the links. It keeps channels short, so that a marker never
//! waits behind a deep queue: at most `SEND_WINDOW` Sends unconfirmed per channel
//! (receivers say how many arrived with `Message::Got`), at most `WINDOW` transactions in
//! flight, and a pause while a snapshot crosses the system.

use super::Node;
use crate::ids::{Amount, NodeId, TxnId};
use crate::protocol::Effect;
use crate::rng::Rng;
use crate::wire::{
    is_load_tx, load_tx, AbortReason, LoadKind, LoadOrder, LoadStats, Message, Peer, TxOutcome,
    TxSpec, MAX_OPS_PER_NODE,
};
use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

/// How often a node running a load tells the master how far it got.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Operations a load starts between two looks at the links.
const BATCH: usize = 1024;
/// Transactions one node's load keeps in flight at once.
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
const MAX_AMOUNT: u64 = 10;

/// One node's share of a `Load`.
#[derive(Debug)]
pub struct Load {
    asker: Peer,
    /// What to start (its `ops` and `seed` are used up at the start).
    order: LoadOrder,
    rng: Rng,
    /// Operations not started yet.
    left: u64,
    /// Which transactions started here are not decided yet, with their participants: a
    /// decision counts once, and only for a transaction this node started (a 3PC leader
    /// or a Paxos Commit participant decides others' too).
    open: BTreeMap<TxnId, (u64, Instant)>,
    /// The next counter of the load's transactions (numbered apart by `order.load`).
    next: u64,
    stats: LoadStats,
    progress_at: Instant,
    /// Since when the load has found its account empty.
    starved: Option<Instant>,
    /// Since when the load has paused for a snapshot recording here.
    paused: Option<Instant>,
}

impl Load {
    /// `tx` was decided here: counted if this load started it.
    pub fn decided(&mut self, tx: TxnId, outcome: TxOutcome) {
        let Some((parts, started)) = self.open.remove(&tx).filter(|_| is_load_tx(tx)) else {
            return;
        };
        match outcome {
            TxOutcome::Committed => {
                self.stats.committed += 1;
                self.stats.parts += parts;
                self.stats.latency.record(started.elapsed());
            }
            TxOutcome::Aborted(r) => self.stats.abort(r),
        }
    }

    fn done(&self) -> bool {
        self.left == 0 && self.open.is_empty()
    }
}

impl Node {
    pub(super) fn start_load(&mut self, asker: Peer, order: LoadOrder) {
        self.load = Some(Load {
            asker,
            rng: Rng::new(order.seed),
            left: order.ops.min(MAX_OPS_PER_NODE),
            order,
            open: BTreeMap::new(),
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
        if let Some(wait) = self.load_pause(&mut load) {
            self.load = Some(load);
            return Ok(Some(wait));
        }
        let mut out = std::mem::take(&mut self.effects);
        let started = self.load_batch(&mut load, &mut out);
        if Instant::now() >= load.progress_at {
            load.progress_at = Instant::now() + PROGRESS_EVERY;
            self.tell_decision(load.asker, &Message::LoadProgress(Box::new(load.stats)))?;
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

    /// How long the load pauses for a snapshot, if it does: one that is beginning (every
    /// node pauses while it crosses the system: with 64 busy processes on 2 cores, each
    /// of its steps would otherwise wait for a scheduling round of the others, measured
    /// 20-60 ms a step), or one recording here (its markers must not queue behind the
    /// load; for a while only, as a snapshot that lost a member never completes).
    fn load_pause(&mut self, load: &mut Load) -> Option<Duration> {
        if let Some((k, since)) = self.live.hush {
            if self.has_whole(&[k]) && self.live.whole_at.is_none() {
                self.live.whole_at = Some(Instant::now());
            }
            let resume = self.live.whole_at.is_some_and(|t| t.elapsed() >= HUSH_GRACE);
            if resume || since.elapsed() >= MAX_HUSH {
                self.live.hush = None;
                self.live.whole_at = None;
            } else {
                let left = match self.live.whole_at {
                    Some(t) => HUSH_GRACE.saturating_sub(t.elapsed()),
                    None => MAX_HUSH.saturating_sub(since.elapsed()),
                };
                return Some(left.max(Duration::from_micros(100)));
            }
        }
        if !self.branch.snapshots().recording() {
            load.paused = None;
            return None;
        }
        let since = *load.paused.get_or_insert_with(Instant::now);
        Some(MAX_PAUSE.saturating_sub(since.elapsed())).filter(|left| !left.is_zero())
    }

    /// Starts up to `BATCH` operations; returns how many.
    fn load_batch(&mut self, load: &mut Load, out: &mut Vec<Effect>) -> usize {
        let peers: Vec<NodeId> = self.branch.peers().to_vec();
        let up: Vec<NodeId> =
            peers.iter().copied().filter(|&p| !self.channels.is_gone(p)).collect();
        let mut started = 0;
        while load.left > 0 && started < BATCH && !peers.is_empty() {
            let transfer = match load.order.kind {
                LoadKind::Sends => false,
                LoadKind::Transfers | LoadKind::Transactions => true,
                LoadKind::Mixed => load.rng.below(2) == 1,
            };
            let available = self.branch.available().0.min(MAX_AMOUNT);
            let ran = if load.order.kind == LoadKind::Transactions {
                self.load_transaction(load, out)
            } else if transfer {
                self.load_transfer(load, &up, available, out)
            } else {
                self.load_send(load, &peers, available, out)
            };
            if !ran {
                break;
            }
            load.left -= 1;
            started += 1;
        }
        started
    }

    /// One transfer of the load, with a random peer that is up: half push money to it,
    /// half pull from it (this node then coordinates as the payee); an empty account only
    /// pulls. The amount is at most what is available here, so conflicts come from
    /// transactions running at once, not from asking the impossible. False: the window
    /// is full.
    fn load_transfer(
        &mut self,
        load: &mut Load,
        up: &[NodeId],
        available: u64,
        out: &mut Vec<Effect>,
    ) -> bool {
        if load.open.len() >= WINDOW {
            return false;
        }
        if up.is_empty() {
            load.stats.abort(AbortReason::NodeDown);
            return true;
        }
        let me = self.branch.id();
        let peer = up[load.rng.below(up.len())];
        let push = available > 0 && load.rng.below(2) == 0;
        let (from, to) = if push { (me, peer) } else { (peer, me) };
        let amount = Amount(1 + load.rng.below(available.max(1) as usize) as u64);
        let tx = load_tx(load.order.load, me, load.next);
        load.next += 1;
        load.open.insert(tx, (2, Instant::now()));
        let spec = TxSpec::transfer(tx, from, to, amount, me);
        self.branch.on_start(&spec, load.order.protocol, out);
        true
    }

    /// One transaction of the load over `order.parts` accounts drawn from the pool,
    /// coordinated here: the first one to all but one of them pay, the rest are paid;
    /// each payee gets 1 to `MAX_AMOUNT`, and the payers share the sum as evenly as it
    /// divides (a payer's share may be 0: it only votes). False: the window is full.
    fn load_transaction(&mut self, load: &mut Load, out: &mut Vec<Effect>) -> bool {
        if load.open.len() >= WINDOW {
            return false;
        }
        let k = usize::from(load.order.parts).min(load.order.pool.len());
        let mut picked = Vec::with_capacity(k);
        while picked.len() < k {
            let i = load.rng.below(load.order.pool.len());
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        let payers = 1 + load.rng.below(k - 1);
        let credits: Vec<u64> =
            (payers..k).map(|_| 1 + load.rng.below(MAX_AMOUNT as usize) as u64).collect();
        let total: u64 = credits.iter().sum();
        let share =
            |i: usize| total / payers as u64 + u64::from((i as u64) < total % payers as u64);
        let changes: Vec<(NodeId, crate::wire::AccountKey, i64)> = picked
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let (node, key) = load.order.pool[p].clone();
                let delta =
                    if i < payers { -(share(i) as i64) } else { credits[i - payers] as i64 };
                (node, key, delta)
            })
            .collect();
        let me = self.branch.id();
        let tx = load_tx(load.order.load, me, load.next);
        load.next += 1;
        let spec = TxSpec::of_changes(tx, me, &changes);
        load.open.insert(tx, (spec.parts.len() as u64, Instant::now()));
        self.branch.on_start(&spec, load.order.protocol, out);
        true
    }

    /// One Send of the load, to a random peer or the next with room in its window.
    /// False: nothing to send yet (starved a while, or every window full).
    fn load_send(
        &mut self,
        load: &mut Load,
        peers: &[NodeId],
        available: u64,
        out: &mut Vec<Effect>,
    ) -> bool {
        if available == 0 {
            // Nothing to spend: wait a while for money to arrive; if none comes, Sends
            // are refused until some does.
            let since = *load.starved.get_or_insert_with(Instant::now);
            if since.elapsed() < STARVED_WAIT {
                return false;
            }
        } else {
            load.starved = None;
        }
        let first = load.rng.below(peers.len());
        let room = |p: &NodeId| self.channels.has_room(*p, SEND_WINDOW);
        let Some(to) = (0..peers.len()).map(|i| peers[(first + i) % peers.len()]).find(room) else {
            return false; // every window is full: the peers' Got frees them
        };
        let amount = Amount(1 + load.rng.below(available.max(1) as usize) as u64);
        match self.branch.on_send(to, amount, out) {
            Ok(()) => load.stats.sent += 1,
            Err(_) => load.stats.err_send += 1,
        }
        true
    }

    /// The share is over: the master is told, with what it did.
    pub(super) fn end_load_if_done(&mut self) -> io::Result<()> {
        if let Some(load) = self.load.as_ref().filter(|l| l.done()) {
            let (asker, stats) = (load.asker, load.stats);
            self.load = None;
            self.tell_decision(asker, &Message::LoadDone(Box::new(stats)))?;
        }
        Ok(())
    }
}
