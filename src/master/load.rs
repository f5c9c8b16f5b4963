//! Live mode's state at the master: the running `Load`, its nodes' shares and progress,
//! and the progress bar on a terminal. The commands that start, wait for and end loads
//! are `live`'s; this module is the state they and the answers share.

use crate::ids::NodeId;
use crate::wire::{AbortReason, LoadOrder, LoadStats, Protocol};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Instant;

/// Live mode is on.
#[derive(Default)]
pub struct Live {
    /// The running load, if any.
    pub load: Option<LoadRun>,
}

impl Live {
    /// The progress bar, if a load draws one.
    pub fn bar(&self) -> Option<&indicatif::ProgressBar> {
        self.load.as_ref().and_then(|r| r.bar.as_ref())
    }
}

/// A `Load` in flight.
pub struct LoadRun {
    count: u64,
    /// The commit protocol of its transactions.
    pub protocol: Protocol,
    started: Instant,
    /// Nodes whose share is not done yet, with their last progress.
    running: BTreeMap<NodeId, LoadStats>,
    /// The shares done (and the last progress of nodes that crashed).
    pub done: LoadStats,
    /// Each node's share as it was last given.
    orders: BTreeMap<NodeId, LoadOrder>,
    /// Nodes that crashed during their share, with the operations it had left: a
    /// restart goes on with them; those still left when the load ends count as aborted
    /// (`node-down`), so that every operation of a load ends counted.
    gone: BTreeMap<NodeId, u64>,
    /// The progress bar, on a terminal only.
    bar: Option<indicatif::ProgressBar>,
}

impl LoadRun {
    /// A load of `count` operations shared among the nodes of `orders`.
    pub fn new(count: u64, protocol: Protocol, orders: BTreeMap<NodeId, LoadOrder>) -> LoadRun {
        LoadRun {
            count,
            protocol,
            started: Instant::now(),
            running: orders.keys().map(|&n| (n, LoadStats::default())).collect(),
            done: LoadStats::default(),
            orders,
            gone: BTreeMap::new(),
            bar: progress_bar(count),
        }
    }

    /// Whether every share is done.
    pub fn over(&self) -> bool {
        self.running.is_empty()
    }

    /// A node's progress (`done`: its share is over). Returns the load's progress so far
    /// (operations done, of how many) for whoever shows it.
    pub fn progress(&mut self, node: NodeId, stats: LoadStats, done: bool) -> (u64, u64) {
        if done {
            if self.running.remove(&node).is_some() {
                self.done.add(&stats);
            }
        } else if let Some(last) = self.running.get_mut(&node) {
            *last = stats;
        }
        let mut sum = self.done;
        for s in self.running.values() {
            sum.add(s);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(sum.done());
        }
        (sum.done(), self.count)
    }

    /// `node` crashed: its share stops with its last progress, the rest kept for a
    /// restart.
    pub fn node_gone(&mut self, node: NodeId) {
        if let Some(last) = self.running.remove(&node) {
            self.done.add(&last);
            let ops = self.orders.get(&node).map_or(0, |o| o.ops);
            let left = ops.saturating_sub(last.done());
            if left > 0 {
                self.gone.insert(node, left);
            }
        }
    }

    /// `node` restarted while the load runs: the rest of its share, numbered as load
    /// `load` (the crashed process's transactions keep their own ids), if it has one.
    pub fn resume_share(&mut self, node: NodeId, load: u32) -> Option<LoadOrder> {
        let left = self.gone.remove(&node)?;
        let mut order = self.orders.get(&node)?.clone();
        order.ops = left;
        order.load = load;
        order.seed = crate::rng::Rng::new(order.seed ^ u64::from(load)).next_u64();
        self.orders.insert(node, order.clone());
        self.running.insert(node, LoadStats::default());
        Some(order)
    }

    /// The load is over: its bar is cleared. Returns how many operations it had, what
    /// they did (the operations of nodes still down counted as aborted, `node-down`),
    /// how long it took, and its protocol.
    pub fn finish(mut self) -> (u64, LoadStats, std::time::Duration, Protocol) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        for left in self.gone.values() {
            self.done.aborted[AbortReason::NodeDown.index()] += left;
        }
        (self.count, self.done, self.started.elapsed(), self.protocol)
    }
}

/// A progress bar for a load of `count` operations on stderr, when stderr is a terminal
/// (never on stdout, and nothing at all when stderr is a file or a pipe).
fn progress_bar(count: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let style = indicatif::ProgressStyle::with_template(
        "load {bar:40} {pos}/{len} operations, {rate}/s, {eta} left",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.0}", s.per_sec());
    });
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(count),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    bar.set_style(style);
    Some(bar)
}
