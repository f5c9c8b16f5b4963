//! Live mode at the master (SPEC chapter 7): `Live on`/`Live off`, `Load`, `Wait`, and
//! what works differently while every node delivers as messages arrive.
//!
//! In live mode the master no longer knows what is in the channels (the ledger keeps
//! only the nodes, who is down, and snapshot ids). It asks the nodes instead: `Check`
//! takes a Chandy–Lamport snapshot, `CollectState` waits at each node until it has the
//! whole snapshot, `Balances` asks. `Live off` waits until every node is idle and every
//! Transfer sent has arrived, then rebuilds the ledger from what the nodes report.

use super::expect::Expect;
use super::fatal::Fatal;
use super::load::{Live, LoadRun};
use super::rules::{self, Rejection};
use super::session::Session;
use super::slots::Out;
use super::txn::PAXOS_NEEDS_THREE;
use crate::ids::{Amount, NodeId, SnapshotId};
use crate::output;
use crate::rng::Rng;
use crate::wire::MAX_OPS_PER_NODE;
use crate::wire::{AbortReason, Control, LoadKind, Message, Money, Protocol, Report, TxOutcome};
use crate::wire::{AccountKey, LoadOrder, TxSpec};
use std::collections::BTreeMap;

/// A `Live off` that has not seen the system quiet after this many rounds gives up.
const QUIET_ROUNDS: usize = 100_000;

impl Session {
    /// `Live on`: the nodes deliver what has arrived, and from now on each message as it
    /// arrives.
    pub fn live_on(&mut self) -> Result<Result<(), Rejection>, Fatal> {
        self.settle()?;
        if self.printer.has_trace() {
            return Ok(Err("live mode writes no trace (run without --trace)".into()));
        }
        if let Some(why) = self.not_ready_for_live() {
            return Ok(Err(why));
        }
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        for n in nodes {
            self.ask(n, Control::Live { on: true }, Expect::Ready(Vec::new()))?;
        }
        self.barrier()?;
        self.live = Some(Live::default());
        Ok(Ok(()))
    }

    /// Why live mode cannot start now: a node down or paused, a partition (live mode has
    /// none: one made before would be ignored there), a held channel.
    fn not_ready_for_live(&mut self) -> Option<Rejection> {
        let ledger = &self.sys().ledger;
        if let Some(&n) = ledger.down().first() {
            return Some(format!("node {n} is down (Restart it first)").into());
        }
        if let Some(&n) = ledger.paused().first() {
            return Some(format!("node {n} is paused (Resume it first)").into());
        }
        if let Some(&n) = ledger.cut_off().first() {
            return Some(format!("node {n} is cut off (Heal first)").into());
        }
        let (a, b) = ledger.held_channel()?;
        Some(format!("channel {a} -> {b} is held (Release it first)").into())
    }

    /// `Live off`: waits for the load, then until every node is idle and every channel
    /// empty; then scripted delivery again, the ledger rebuilt from the nodes.
    pub fn live_off(&mut self) -> Result<Result<(), Rejection>, Fatal> {
        self.wait_load()?;
        if let Some(&n) = self.sys().ledger.down().first() {
            let why = format!(
                "node {n} is down (Restart it first: live mode ends once every channel is empty)"
            );
            return Ok(Err(why.into()));
        }
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        self.wait_quiet(&nodes)?;
        for &n in &nodes {
            self.ask(n, Control::Live { on: false }, Expect::Ready(Vec::new()))?;
        }
        let states = self.query(&nodes, None)?;
        let states: Vec<(NodeId, Money)> = states.into_iter().map(|q| (q.node, q.money)).collect();
        self.sys().ledger.resync(&states);
        self.live = None;
        Ok(Ok(()))
    }

    /// Asks `nodes` whether they are quiet until two rounds in a row say so with the
    /// same counts (nothing moved in between).
    fn wait_quiet(&mut self, nodes: &[NodeId]) -> Result<(), Fatal> {
        let mut last = None;
        for _ in 0..QUIET_ROUNDS {
            self.answers.quiet.clear();
            for &n in nodes {
                self.ask(n, Control::Quiet, Expect::Quiet)?;
            }
            self.barrier()?;
            let (quiet, other) = quiet_state(&std::mem::take(&mut self.answers.quiet));
            if quiet && last == Some(other) {
                return Ok(());
            }
            last = quiet.then_some(other);
        }
        Err(Fatal::Bug(format!("the system was not quiet after {QUIET_ROUNDS} rounds")))
    }

    /// `Send` in live mode: its ERR_SEND is not predicted.
    pub fn send_live(
        &mut self,
        from: NodeId,
        to: NodeId,
        amount: Amount,
    ) -> Result<Result<(), Rejection>, Fatal> {
        if let Err(why) = rules::acts(&self.sys().ledger, from, &[to]) {
            return Ok(Err(why));
        }
        self.ask(from, Control::Send { to, amount, predicted: None }, Expect::LiveSend)?;
        Ok(Ok(()))
    }

    /// `Transfer` in live mode: the coordinator answers at the decision (or at once with
    /// `nowait`); the nodes deliver its messages as they arrive.
    pub fn transfer_live(
        &mut self,
        spec: TxSpec,
        nowait: bool,
        protocol: Protocol,
    ) -> Result<(), Fatal> {
        let tx = spec.tx;
        if spec.members().iter().any(|&n| self.sys().ledger.is_down(n)) {
            let outcome = TxOutcome::Aborted(AbortReason::NodeDown);
            self.book.txns.record_outcome(tx, outcome);
            let word = self.book.txns.word(tx);
            self.push_done(vec![Out::Line(output::transfer(word, tx, Some(outcome)))], false);
            return Ok(());
        }
        let coord = spec.coord;
        let start = Control::Transfer { spec: spec.clone(), drive: !nowait, protocol };
        let slot = self.ask(coord, start, Expect::LiveTx { spec, nowait })?;
        if !nowait {
            self.wait_slot(slot)?;
        }
        Ok(())
    }

    /// `Restart` in live mode: a new process on the node's log; it and every peer resync
    /// their channels as they link up again.
    pub fn restart_live(&mut self, node: NodeId) -> Result<(), Fatal> {
        self.stop_for_restart(node)?;
        self.relaunch(node, true)?;
        // A snapshot begun while the node was down may lack its markers to it.
        self.lose_snapshots(node);
        // A load still running: the node goes on with the rest of its share.
        let next = self.book.loads + 1;
        let rest = self
            .live
            .as_mut()
            .and_then(|l| l.load.as_mut())
            .and_then(|run| run.resume_share(node, next));
        if let Some(order) = rest {
            self.book.loads = next;
            self.ask(node, Control::Load(order), Expect::Ready(Vec::new()))?;
        }
        // Before the next command: a peer forwards markers as they arrive, not when a
        // command says, so each must hold the new link before any snapshot can start.
        self.barrier()
    }

    /// `Load count kind [seed n] [async]`: each node up gets its share of the
    /// operations; returns once they are all done unless `background`.
    pub fn load(
        &mut self,
        count: u64,
        kind: LoadKind,
        parts: u8,
        seed: Option<u64>,
        background: bool,
    ) -> Result<Result<(), Rejection>, Fatal> {
        if self.live.as_ref().is_some_and(|l| l.load.is_some()) {
            return Ok(Err("a load is already running (Wait for it)".into()));
        }
        let protocol = self.book.txns.protocol;
        let ledger = &self.sys().ledger;
        let up: Vec<NodeId> = ledger.nodes().filter(|&n| !ledger.is_down(n)).collect();
        if up.len() < 2 {
            return Ok(Err("a load needs at least two nodes up".into()));
        }
        if protocol == Protocol::Paxos && ledger.nodes().count() < 3 {
            return Ok(Err(PAXOS_NEEDS_THREE.into()));
        }
        let n = up.len() as u64;
        if count.div_ceil(n) > MAX_OPS_PER_NODE {
            return Ok(Err(format!(
                "at most {MAX_OPS_PER_NODE} operations per node ({n} nodes up)"
            )
            .into()));
        }
        let pool = match self.load_pool(kind, parts) {
            Ok(pool) => pool,
            Err(why) => return Ok(Err(why)),
        };
        let seed = seed.unwrap_or_else(|| self.rng.next_u64());
        self.book.txns.three_pc_ran |= kind != LoadKind::Sends && protocol == Protocol::ThreePc;
        self.book.txns.many_parts |= kind == LoadKind::Transactions;
        self.book.loads += 1;
        let load = self.book.loads;
        let mut shares = BTreeMap::new();
        for (i, &node) in up.iter().enumerate() {
            let ops = count / n + u64::from((i as u64) < count % n);
            if ops > 0 {
                let seed = Rng::new(seed ^ u64::from(node.0).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .next_u64();
                let pool = pool.clone();
                let order = LoadOrder { ops, kind, seed, load, protocol, parts, pool };
                self.ask(node, Control::Load(order.clone()), Expect::Ready(Vec::new()))?;
                shares.insert(node, order);
            }
        }
        let run = LoadRun::new(count, protocol, shares);
        self.live.as_mut().expect("in live mode").load = Some(run);
        self.sys().flush_all()?;
        if !background {
            self.wait_load()?;
        }
        Ok(Ok(()))
    }

    /// The accounts a load of `parts`-part transactions draws from: every named account,
    /// or every node account when there is none; empty for other loads.
    fn load_pool(&self, kind: LoadKind, parts: u8) -> Result<Vec<(NodeId, AccountKey)>, Rejection> {
        if kind != LoadKind::Transactions {
            return Ok(Vec::new());
        }
        let holdings = self.sys.as_ref().expect("a load runs in a system").ledger.holdings();
        let pool: Vec<(NodeId, AccountKey)> = if holdings.has_accounts() {
            holdings.accounts().map(|(a, n)| (n, AccountKey::Named(a.clone()))).collect()
        } else {
            holdings.nodes().map(|n| (n, AccountKey::Own)).collect()
        };
        if pool.len() < usize::from(parts) {
            let what = if holdings.has_accounts() { "accounts" } else { "nodes" };
            let why = format!(
                "transactions of {parts} parts need {parts} {what}; there are {}",
                pool.len()
            );
            return Err(why.into());
        }
        Ok(pool)
    }

    /// `Wait`: until the running load is done; prints its line. Nothing runs: nothing.
    pub fn wait_load(&mut self) -> Result<(), Fatal> {
        while self.live.as_ref().and_then(|l| l.load.as_ref()).is_some_and(|run| !run.over()) {
            self.wait_one()?;
        }
        let Some(run) = self.live.as_mut().and_then(|l| l.load.take()) else { return Ok(()) };
        let (count, done, elapsed, protocol) = run.finish();
        self.book.txns.count_load(&done, protocol);
        self.push_done(vec![Out::Line(output::load(count, &done, elapsed))], false);
        Ok(())
    }

    /// A snapshot begins while a load runs: every node is told to pause its share until
    /// it has the whole snapshot. Measured with 64 nodes on 2 cores, a snapshot otherwise
    /// waits a scheduling round (tens of ms) for each busy node at each of its steps: the
    /// initiator's recording, then every node's first marker.
    pub fn hush(&mut self, snapshot: SnapshotId) -> Result<(), Fatal> {
        if self.live.as_ref().is_some_and(|l| l.load.is_some()) {
            self.sys().notify_nodes(&Message::Hush { snapshot })?;
            self.sys().flush_all()?;
        }
        Ok(())
    }
}

/// Whether the nodes' `Quiet` reports say the system is quiet (every node idle, every
/// Transfer sent has arrived), with the total of other messages sent and received (the
/// same total in two quiet rounds in a row: nothing moved in between).
fn quiet_state(reports: &[(NodeId, Report)]) -> (bool, (u64, u64)) {
    let mut quiet = true;
    let mut other = (0, 0);
    let mut sent: BTreeMap<(NodeId, NodeId), u64> = BTreeMap::new();
    let mut got: BTreeMap<(NodeId, NodeId), u64> = BTreeMap::new();
    for (n, r) in reports {
        if let Report::Quiet { sent: s, got: g, others, busy } = r {
            quiet &= !busy;
            other.0 += others.0;
            other.1 += others.1;
            sent.extend(s.iter().filter(|e| e.1 > 0).map(|&(p, k)| ((*n, p), k)));
            got.extend(g.iter().filter(|e| e.1 > 0).map(|&(p, k)| ((p, *n), k)));
        }
    }
    (quiet && sent == got, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(node: u32, sent: &[(u32, u64)], got: &[(u32, u64)], busy: bool) -> (NodeId, Report) {
        let ids = |v: &[(u32, u64)]| v.iter().map(|&(p, k)| (NodeId(p), k)).collect();
        (NodeId(node), Report::Quiet { sent: ids(sent), got: ids(got), others: (3, 2), busy })
    }

    // Quiet only when no node is busy and every Transfer sent to a peer arrived there;
    // peers that never exchanged a Transfer need not report each other.
    #[test]
    fn quiet_means_idle_and_every_transfer_arrived() {
        let both = [quiet(1, &[(2, 4)], &[(2, 1)], false), quiet(2, &[(1, 1)], &[(1, 4)], false)];
        assert_eq!(quiet_state(&both), (true, (6, 4)));
        let in_flight =
            [quiet(1, &[(2, 5)], &[(2, 1)], false), quiet(2, &[(1, 1)], &[(1, 4)], false)];
        assert!(!quiet_state(&in_flight).0, "a Transfer is still on its way");
        let busy = [quiet(1, &[(2, 4)], &[(2, 1)], true), quiet(2, &[(1, 1)], &[(1, 4)], false)];
        assert!(!quiet_state(&busy).0, "a node still waits on something");
        let silent = [quiet(1, &[(3, 0)], &[], false), quiet(3, &[], &[(1, 0)], false)];
        assert!(quiet_state(&silent).0);
    }
}
