//! Live mode at the master (SPEC chapter 7): `Live on`/`Live off`, `Load`, `Wait`, and
//! the commands that keep working while every node delivers as messages arrive.
//!
//! In live mode the master no longer knows what is in the channels (the ledger keeps
//! only the nodes, who is down, and snapshot ids). It asks the nodes instead: `Check`
//! takes a Chandy–Lamport snapshot, `CollectState` waits at each node until it has the
//! whole snapshot, `Balances` asks. `Live off` waits until every node is idle and every
//! Transfer sent has arrived, then rebuilds the ledger from what the nodes report.
//! A child of `run`: the same `Master`, its other concern.

use super::*;
use crate::wire::{LoadKind, LoadStats, Protocol, MAX_OPS_PER_NODE};
use std::io::IsTerminal;
use std::time::Instant;

/// A `Live off` that has not seen the system quiet after this many rounds gives up.
const QUIET_ROUNDS: usize = 100_000;

/// The master's live-mode state.
#[derive(Default)]
pub(super) struct Live {
    /// The running load, if any.
    pub(super) load: Option<LoadRun>,
}

/// Why a Paxos Commit transfer or load is refused on fewer than three nodes.
pub(super) const PAXOS_NEEDS_THREE: &str =
    "paxos needs three nodes (its three acceptors); this system has fewer";

/// A `Load` in flight.
pub(super) struct LoadRun {
    count: u64,
    /// The commit protocol of its transfers.
    protocol: Protocol,
    started: Instant,
    /// Nodes whose share is not done yet, with their last progress.
    running: BTreeMap<NodeId, LoadStats>,
    /// The shares done (and the last progress of nodes that crashed).
    done: LoadStats,
    /// The progress bar, on a terminal only.
    bar: Option<indicatif::ProgressBar>,
}

impl LoadRun {
    /// The progress bar, if one is drawn.
    pub(super) fn bar(&self) -> Option<&indicatif::ProgressBar> {
        self.bar.as_ref()
    }

    fn line(&self) -> String {
        let s = &self.done;
        let elapsed = self.started.elapsed();
        let ms = elapsed.as_millis();
        let per_s = (s.done() as f64 / elapsed.as_secs_f64().max(1e-9)).round() as u64;
        format!(
            "LOAD {} committed={} aborted={} err_send={} elapsed_ms={ms} per_s={per_s}",
            self.count,
            s.sent + s.committed,
            s.aborted.iter().sum::<u64>(),
            s.err_send
        )
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

impl Master {
    pub(super) fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Every command in live mode.
    pub(super) fn execute_live(
        &mut self,
        line: usize,
        text: &str,
        cmd: Command,
    ) -> Result<(), Fatal> {
        let scripted_only = |what: &str| {
            let verb = if what.contains(" and ") { "are" } else { "is" };
            format!("{what} {verb} not available in live mode (messages are delivered as they arrive; Live off first)")
        };
        match cmd {
            Command::CreateNode { .. } => self.reject(line, text, scripted_only("CreateNode")),
            Command::Receive { .. } => self.reject(line, text, scripted_only("Receive")),
            Command::ReceiveAll => self.reject(line, text, scripted_only("ReceiveAll")),
            Command::Hold { .. } | Command::Release { .. } | Command::Lose { .. } => {
                self.reject(line, text, scripted_only("Hold, Release and Lose"))
            }
            Command::CrashAt { .. } => self.reject(line, text, scripted_only("CrashAt")),
            Command::Pause { .. } | Command::Resume { .. } => {
                self.reject(line, text, scripted_only("Pause and Resume"))
            }
            Command::Partition { .. } | Command::Heal => {
                self.reject(line, text, scripted_only("Partition and Heal"))
            }
            Command::Live { on: true } => self.reject(line, text, "live mode is already on"),
            Command::Live { on: false } => self.live_off(line, text)?,
            Command::Load { count, kind, seed, background } => {
                self.load(line, text, count, kind, seed, background)?
            }
            Command::Wait => self.wait_load()?,
            Command::Send { from, .. } if self.is_down(from) => {
                self.reject(line, text, format!("node {from} is down"))
            }
            Command::Crash { node } if self.is_down(node) => {
                self.reject(line, text, format!("node {node} is already down"))
            }
            Command::Send { from, to, amount } => {
                if self.known(line, text, &[from, to]) {
                    let slot = self.push_await(Expect::LiveSend);
                    self.sys().command(
                        from,
                        Control::Send { to, amount, predicted: None },
                        slot,
                    )?;
                }
            }
            Command::Crash { node } => {
                if self.known(line, text, &[node]) {
                    self.crash_live(node)?;
                }
            }
            Command::Restart { node } => {
                if self.known(line, text, &[node]) {
                    self.restart_live(node)?;
                }
            }
            // The same in both modes: they ask the nodes, or print what the master has.
            other => self.execute_scripted(line, text, other)?,
        }
        Ok(())
    }

    /// `Live on`: the nodes deliver what has arrived, and from now on each message as it
    /// arrives.
    pub(super) fn live_on(&mut self, line: usize, text: &str) -> Result<(), Fatal> {
        self.settle()?;
        if self.trace.is_some() {
            self.reject(line, text, "live mode writes no trace (run without --trace)");
            return Ok(());
        }
        if let Some(&n) = self.sys().ledger.down().first() {
            self.reject(line, text, format!("node {n} is down (Restart it first)"));
            return Ok(());
        }
        if let Some(&n) = self.sys().ledger.paused().first() {
            self.reject(line, text, format!("node {n} is paused (Resume it first)"));
            return Ok(());
        }
        // Live mode has no partitions (it refuses Partition and Heal): one made before
        // would be ignored there, so it must end first.
        if let Some(&n) = self.sys().ledger.cut_off().first() {
            self.reject(line, text, format!("node {n} is cut off (Heal first)"));
            return Ok(());
        }
        if let Some((a, b)) = self.sys().ledger.held_channel() {
            self.reject(line, text, format!("channel {a} -> {b} is held (Release it first)"));
            return Ok(());
        }
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        for n in nodes {
            let slot = self.push_await(Expect::Ready(Vec::new()));
            self.sys().command(n, Control::Live { on: true }, slot)?;
        }
        self.barrier()?;
        self.live = Some(Live::default());
        Ok(())
    }

    /// `Live off`: waits for the load, then until every node is idle and every channel
    /// empty; then scripted delivery again, the ledger rebuilt from the nodes.
    fn live_off(&mut self, line: usize, text: &str) -> Result<(), Fatal> {
        self.wait_load()?;
        if let Some(&n) = self.sys().ledger.down().first() {
            let why = format!(
                "node {n} is down (Restart it first: live mode ends once every channel is empty)"
            );
            self.reject(line, text, why);
            return Ok(());
        }
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        let mut last = None;
        for round in 0.. {
            if round == QUIET_ROUNDS {
                return Err(Fatal(format!("bug: the system was not quiet after {round} rounds")));
            }
            self.quiet.clear();
            for &n in &nodes {
                let slot = self.push_await(Expect::Quiet);
                self.sys().command(n, Control::Quiet, slot)?;
            }
            self.barrier()?;
            let reports = std::mem::take(&mut self.quiet);
            let (quiet, other) = quiet_state(&reports);
            if quiet && last == Some(other) {
                break;
            }
            last = quiet.then_some(other);
        }
        for &n in &nodes {
            let slot = self.push_await(Expect::Ready(Vec::new()));
            self.sys().command(n, Control::Live { on: false }, slot)?;
        }
        let states = self.query(&nodes, None)?;
        let states: Vec<(NodeId, Amount, Amount)> =
            states.into_iter().map(|(n, b, h, _)| (n, b, h)).collect();
        self.sys().ledger.resync(&states);
        self.live = None;
        Ok(())
    }

    /// `Transfer` in live mode: the coordinator answers at the decision (or at once with
    /// `nowait`); the nodes deliver its messages as they arrive.
    pub(super) fn transfer_live(
        &mut self,
        spec: TxSpec,
        nowait: bool,
        protocol: Protocol,
    ) -> Result<(), Fatal> {
        let tx = spec.tx;
        if spec.members().iter().any(|&n| self.is_down(n)) {
            let outcome = TxOutcome::Aborted(AbortReason::NodeDown);
            self.record_outcome(tx, outcome);
            self.push_done(vec![Out::Line(output::transfer(tx, Some(outcome)))], false);
            return Ok(());
        }
        let coord = spec.coord;
        let start = Control::Transfer { spec: spec.clone(), drive: !nowait, protocol };
        let slot = self.push_await(Expect::LiveTx { spec, nowait });
        self.sys().command(coord, start, slot)?;
        if !nowait {
            self.wait_slot(slot)?;
        }
        Ok(())
    }

    /// The line for a live `Transfer`'s answer.
    pub(super) fn live_tx_line(
        &mut self,
        spec: TxSpec,
        nowait: bool,
        r: &TxReport,
    ) -> Result<String, Fatal> {
        let decided = r.decided.iter().copied().find(|d| d.0 == spec.tx);
        if let Some((tx, outcome)) = decided {
            self.record_outcome(tx, outcome);
        }
        match (nowait, decided) {
            // A nowait transfer decided at once (a local NO) prints its decision.
            (_, Some((tx, outcome))) => Ok(output::transfer(tx, Some(outcome))),
            (true, None) => Ok(output::transfer_started(spec.tx)),
            (false, None) => {
                Err(Fatal(format!("bug: the coordinator answered {} undecided", spec.tx)))
            }
        }
    }

    /// `Check` in live mode (every node up): a snapshot, begun at the first node,
    /// gathered whole, held against all money created.
    pub(super) fn check_live(&mut self) -> Result<(), Fatal> {
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        let Some(&first) = nodes.first() else {
            self.push_done(vec![Out::Line("CHECK OK total=0".into())], false);
            return Ok(());
        };
        let snapshot = self.sys().ledger.begin_live();
        let seq = self.sys().alloc_seq(first);
        self.hush(snapshot)?;
        let slot = self.push_await(Expect::LiveBegun);
        self.sys().observe(ObserverRequest::Begin { snapshot, node: first, seq }, slot)?;
        let seqs = nodes.iter().map(|&n| (n, self.sys().alloc_seq(n))).collect();
        let snapshots = vec![(snapshot, nodes)];
        let slot = self.push_await(Expect::LiveCheck);
        self.sys().observe(ObserverRequest::Collect { snapshots, seqs, wait: true }, slot)
    }

    /// The line for a live `Check`'s snapshot.
    pub(super) fn live_check_line(&mut self, snaps: &[GlobalSnapshot]) -> String {
        let Some(s) = snaps.first() else {
            self.rejected = true;
            return "CHECK FAILED the snapshot was not gathered".into();
        };
        let total = s.total().unwrap_or(Amount::MAX);
        self.check_line(total, Vec::new())
    }

    /// `Crash` in live mode: the process is killed now; its peers see its links close.
    pub(super) fn crash_live(&mut self, node: NodeId) -> Result<(), Fatal> {
        self.barrier()?;
        self.collect_costs(&[node])?;
        let mut outs = Vec::new();
        self.node_died(node, &mut outs);
        // The node forgets what it recorded.
        self.lose_snapshots(node);
        if let Some(run) = self.live.as_mut().and_then(|l| l.load.as_mut()) {
            if let Some(last) = run.running.remove(&node) {
                run.done.add(&last);
            }
        }
        self.push_done(outs, false);
        Ok(())
    }

    /// No snapshot begun so far can be gathered whole (`node` crashed or restarted):
    /// the next `CollectState` says so.
    fn lose_snapshots(&mut self, node: NodeId) {
        for k in std::mem::take(&mut self.since_collect) {
            self.lost_snapshots.push((k, node));
        }
    }

    /// `Restart` in live mode: a new process on the node's log; it and every peer resync
    /// their channels as they link up again.
    fn restart_live(&mut self, node: NodeId) -> Result<(), Fatal> {
        self.stop_for_restart(node)?;
        // The ledger's bookkeeping of links only: nothing is resent from it in live mode.
        let relinks = self.sys().ledger.restart(node);
        let peers: Vec<NodeId> = self.sys().ledger.nodes().filter(|&x| x != node).collect();
        let down = self.sys().ledger.down();
        self.sys().restart_node(node)?;
        let slot = self.push_await(Expect::Ready(Vec::new()));
        let setup =
            Control::Setup { peers, join: Vec::new(), down, resend: Vec::new(), live: true };
        self.sys().command(node, setup, slot)?;
        self.wait_slot(slot)?;
        // Every peer takes the new link before the next command, so that nothing it
        // sends from then on goes into its stale link to the dead process.
        for (from, to, gen, _) in relinks {
            if to == node && from != node {
                let slot = self.push_await(Expect::Ready(Vec::new()));
                self.sys().command(from, Control::Resend { to, gen, msgs: Vec::new() }, slot)?;
            }
        }
        // A snapshot begun while the node was down may lack its markers to it.
        self.lose_snapshots(node);
        let gen = self.sys().starts(node);
        let slot = self.push_await(Expect::Relinked);
        self.sys().observe(ObserverRequest::Relink { node, gen }, slot)?;
        // Before the next command: a peer forwards markers as they arrive, not when a
        // command says, so each must hold the new link before any snapshot can start.
        self.barrier()
    }

    fn load(
        &mut self,
        line: usize,
        text: &str,
        count: u64,
        kind: LoadKind,
        seed: Option<u64>,
        background: bool,
    ) -> Result<(), Fatal> {
        if self.live.as_ref().is_some_and(|l| l.load.is_some()) {
            self.reject(line, text, "a load is already running (Wait for it)");
            return Ok(());
        }
        let ledger = &self.sys().ledger;
        let up: Vec<NodeId> = ledger.nodes().filter(|&n| !ledger.is_down(n)).collect();
        if up.len() < 2 {
            self.reject(line, text, "a load needs at least two nodes up");
            return Ok(());
        }
        let protocol = self.txns.protocol;
        if protocol == Protocol::Paxos && self.sys().ledger.nodes().count() < 3 {
            self.reject(line, text, PAXOS_NEEDS_THREE);
            return Ok(());
        }
        let n = up.len() as u64;
        if count.div_ceil(n) > MAX_OPS_PER_NODE {
            let why = format!("at most {MAX_OPS_PER_NODE} operations per node ({n} nodes up)");
            self.reject(line, text, why);
            return Ok(());
        }
        let seed = seed.unwrap_or_else(|| self.rng.next_u64());
        self.txns.three_pc_ran |= kind != LoadKind::Sends && protocol == Protocol::ThreePc;
        self.loads += 1;
        let load = self.loads;
        let mut running = BTreeMap::new();
        for (i, &node) in up.iter().enumerate() {
            let ops = count / n + u64::from((i as u64) < count % n);
            if ops == 0 {
                continue;
            }
            let seed =
                Rng::new(seed ^ u64::from(node.0).wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64();
            let slot = self.push_await(Expect::Ready(Vec::new()));
            let cmd = Control::Load { ops, kind, seed, load, protocol };
            self.sys().command(node, cmd, slot)?;
            running.insert(node, LoadStats::default());
        }
        let run = LoadRun {
            count,
            protocol,
            started: Instant::now(),
            running,
            done: LoadStats::default(),
            bar: progress_bar(count),
        };
        self.live.as_mut().expect("in live mode").load = Some(run);
        self.sys().flush_all()?;
        if !background {
            self.wait_load()?;
        }
        Ok(())
    }

    /// `Wait`: until the running load is done; prints its line. Nothing runs: nothing.
    pub(super) fn wait_load(&mut self) -> Result<(), Fatal> {
        while self
            .live
            .as_ref()
            .and_then(|l| l.load.as_ref())
            .is_some_and(|run| !run.running.is_empty())
        {
            self.wait_one()?;
        }
        let Some(run) = self.live.as_mut().and_then(|l| l.load.take()) else { return Ok(()) };
        if let Some(bar) = &run.bar {
            bar.finish_and_clear();
        }
        let s = run.done;
        self.txns.commits += s.committed;
        self.txns.committed_by[run.protocol.index()] += s.committed;
        for (r, n) in AbortReason::ALL.iter().zip(s.aborted) {
            *self.txns.aborts.entry(r.as_str()).or_default() += n;
        }
        self.push_done(vec![Out::Line(run.line())], false);
        Ok(())
    }

    /// A node's load progress (`done` once its share is over).
    pub(super) fn on_load(&mut self, node: NodeId, stats: LoadStats, done: bool) {
        if done || !self.system.as_ref().is_some_and(|s| s.owes_answers()) {
            self.heard = Instant::now();
        }
        let Some(run) = self.live.as_mut().and_then(|l| l.load.as_mut()) else {
            log::warn!("master: load report from node {node} with no load running; ignored");
            return;
        };
        if done {
            if run.running.remove(&node).is_some() {
                run.done.add(&stats);
            }
        } else if let Some(last) = run.running.get_mut(&node) {
            *last = stats;
        }
        if run.bar.is_none() && self.web.is_none() {
            return;
        }
        let mut sum = run.done;
        for s in run.running.values() {
            sum.add(s);
        }
        if let Some(bar) = &run.bar {
            bar.set_position(sum.done());
        }
        if let Some(w) = self.web.as_mut() {
            w.progress(sum.done(), run.count);
        }
    }

    /// A snapshot begins while a load runs: every node is told to pause its share until
    /// it has the whole snapshot. Measured with 64 nodes on 2 cores, a snapshot otherwise
    /// waits a scheduling round (tens of ms) for each busy node at each of its steps: the
    /// initiator's recording, then every node's first marker.
    pub(super) fn hush(&mut self, snapshot: SnapshotId) -> Result<(), Fatal> {
        if self.live.as_ref().is_some_and(|l| l.load.is_some()) {
            self.sys().notify_nodes(&Message::Hush { snapshot })?;
            self.sys().flush_all()?;
        }
        Ok(())
    }

    /// Whether a load's progress bar is drawn now.
    pub(super) fn bar_shown(&self) -> bool {
        self.live.as_ref().and_then(|l| l.load.as_ref()).is_some_and(|r| r.bar.is_some())
    }

    /// Runs `f` (which writes a line) with the load's progress bar, if one is drawn, out
    /// of the way: it is cleared first and drawn again after, so lines never mix with it.
    pub(super) fn with_bar_hidden<T>(&self, f: impl FnOnce() -> T) -> T {
        match self.live.as_ref().and_then(|l| l.load.as_ref()).and_then(|r| r.bar.as_ref()) {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
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
