//! The fault commands (SPEC chapters 5 and 8): `Crash`, `CrashAt`, `Restart`, `Lose`,
//! `Hold`/`Release`, `Pause`/`Resume` (SIGSTOP/SIGCONT) and `Partition`/`Heal` (channels
//! across a cut wait, in order). A fault that leaves a transaction waiting on a node that
//! is down, paused or cut off drives it at once, with logical timeouts (chapter 8), except
//! two-phase commit's on `Crash`, which chapter 5 leaves to the next `Transfer` or
//! `Restart`.

use super::expect::Expect;
use super::fatal::Fatal;
use super::rules::Rejection;
use super::session::Session;
use super::slots::Out;
use crate::ids::{NodeId, TxnId};
use crate::trace::TraceEvent;
use crate::wire::{
    AbortReason, ChannelMsg, Control, CrashPoint, ObserverRequest, Protocol, TxOutcome, TxState,
};

/// Why a node must not be paused while a process starts: every node links to the new one.
const LINKS_TO_NEW: &str = "every node links to the new process (Resume it first)";

impl Session {
    /// `Crash node` (scripted): the process is SIGKILLed after every earlier command ran.
    pub fn crash_cmd(&mut self, node: NodeId) -> Result<Result<(), Rejection>, Fatal> {
        if self.sys().ledger.is_down(node) {
            return Ok(Err(format!("node {node} is already down").into()));
        }
        self.book.txns.faults = true;
        self.crash(node).map(Ok)
    }

    /// `CrashAt node point`: armed at the node, which dies when it next reaches it. A
    /// paused node takes no command (SPEC chapter 8).
    pub fn crash_at(
        &mut self,
        node: NodeId,
        point: CrashPoint,
    ) -> Result<Result<(), Rejection>, Fatal> {
        let ledger = &self.sys().ledger;
        if ledger.is_down(node) {
            return Ok(Err(format!("node {node} is already down").into()));
        }
        if ledger.is_paused(node) {
            return Ok(Err(Rejection::Paused(node)));
        }
        self.book.txns.faults = true;
        self.ask(node, Control::ArmCrash { point }, Expect::Ready(Vec::new()))?;
        Ok(Ok(()))
    }

    /// `Hold`/`Release from to`: the channel delivers nothing for now, or again.
    pub fn hold(&mut self, from: NodeId, to: NodeId, hold: bool) -> Result<(), Rejection> {
        self.book.txns.faults |= hold;
        if self.sys().ledger.hold((from, to), hold) {
            return Ok(());
        }
        let state = if hold { "already held" } else { "not held" };
        Err(format!("channel {from} -> {to} is {state}").into())
    }

    /// `Lose from to`: the head of the channel is lost on the way. Channels never lose
    /// money or markers; a commit protocol's control message can be lost, and the
    /// protocol copes.
    pub fn lose(&mut self, from: NodeId, to: NodeId) -> Result<Result<(), Rejection>, Fatal> {
        if self.sys().ledger.is_paused(to) {
            return Ok(Err(
                format!("node {to} is paused: what it was sent is in its process").into()
            ));
        }
        self.book.txns.faults = true;
        let head = self.sys().ledger.head((from, to)).cloned();
        let Some(msg) = head.filter(|m| matches!(m, ChannelMsg::Commit(c) if c.money().is_none()))
        else {
            return Ok(Err(match self.sys().ledger.head((from, to)) {
                None => Rejection::Empty((from, to)),
                Some(_) => format!(
                    "the head of channel {from} -> {to} carries money or is a marker; only \
                     commit-protocol control messages can be lost"
                )
                .into(),
            }));
        };
        // A message that died with a process, or waits to be sent again, is nowhere but
        // in the ledger: the receiver has nothing to drop.
        let only_here = self.sys().ledger.is_down(to) || self.sys().ledger.is_lost((from, to));
        self.sys().ledger.discard((from, to));
        if !only_here {
            self.ask(to, Control::Discard { from }, Expect::Ready(Vec::new()))?;
        }
        self.trace(vec![TraceEvent::Lose { from, to, msg }]);
        Ok(Ok(()))
    }

    /// The node's process is SIGKILLed after every earlier command ran (it answers a
    /// query first: commands whose outcome was predicted are not answered). Three-phase
    /// commit and Paxos Commit finish without it, at once (logical time); two-phase
    /// commit waits for a command that drives it (chapter 5).
    pub fn crash(&mut self, node: NodeId) -> Result<(), Fatal> {
        self.settle()?;
        if self.sys().ledger.runs(node) {
            self.collect_costs(&[node])?;
        }
        let outs = self.node_died(node);
        self.push_done(outs, false);
        let txs = self.unfinished_with(&[node], false);
        self.drive(&txs)
    }

    /// `Restart node` (scripted): a new process on the node's log; what was in flight to
    /// it is sent again; then its unfinished transactions get what they need.
    pub fn restart(&mut self, node: NodeId) -> Result<Result<(), Rejection>, Fatal> {
        if let Some(n) = self.paused_other_than(Some(node)) {
            return Ok(Err(format!("node {n} is paused: {LINKS_TO_NEW}").into()));
        }
        self.book.txns.faults = true;
        self.stop_for_restart(node)?;
        self.relaunch(node, false)?;
        let mut mine: Vec<TxnId> = self
            .book
            .txns
            .specs
            .keys()
            .copied()
            .filter(|&tx| self.book.txns.nodes(tx).contains(&node))
            .collect();
        mine.sort();
        self.drive(&mine)?;
        self.presume_aborts(node, &mine)?;
        self.nobody_holds_it(&mine)?;
        Ok(Ok(()))
    }

    /// Starts `node` again on its log and links everyone to the new process; in a script
    /// what died with it (or was sent while it was down) is sent again, in live mode the
    /// two ends of each channel resync themselves.
    pub fn relaunch(&mut self, node: NodeId, live: bool) -> Result<(), Fatal> {
        let resends = self.sys().ledger.restart(node);
        let peers: Vec<NodeId> = self.sys().ledger.nodes().filter(|&x| x != node).collect();
        let down = self.sys().ledger.down();
        let own: Vec<(NodeId, Vec<ChannelMsg>)> = resends
            .iter()
            .filter(|r| r.0 == node && !r.3.is_empty() && !live)
            .map(|r| (r.1, r.3.clone()))
            .collect();
        self.sys().restart_node(node)?;
        if !live {
            self.trace(vec![TraceEvent::Restart { node }]);
        }
        let setup = Control::Setup { peers, join: Vec::new(), down, resend: own, live };
        let slot = self.ask(node, setup, Expect::Ready(Vec::new()))?;
        self.wait_slot(slot)?;
        // Every process linked to the restarted node takes its new link before its next
        // command, so nothing goes into a stale link to the dead process.
        for (from, to, gen, msgs) in resends {
            let msgs = if live { Vec::new() } else { msgs };
            self.book.txns.counts.retransmissions += msgs.len() as u64;
            if from != node && (!live || to == node) {
                self.ask(from, Control::Resend { to, gen, msgs }, Expect::Ready(Vec::new()))?;
            }
        }
        let gen = self.sys().starts(node);
        self.observe(ObserverRequest::Relink { node, gen }, Expect::Relinked)?;
        Ok(())
    }

    /// Presumed abort: a coordinator that restarted with no decision logged for a
    /// transaction it started has aborted it, whether or not anyone asks it (not so in
    /// Paxos Commit, where the participants' ballots may still commit it).
    fn presume_aborts(&mut self, node: NodeId, mine: &[TxnId]) -> Result<(), Fatal> {
        let txns = &self.book.txns;
        let undecided: Vec<TxnId> = mine
            .iter()
            .copied()
            .filter(|t| txns.specs[t].coord == node && !txns.outcomes.contains_key(t))
            .filter(|&t| txns.protocol_of(t) != Protocol::Paxos)
            .collect();
        for tx in undecided {
            let state = self.query(&[node], Some(tx))?.pop().and_then(|q| q.tx);
            if matches!(state, Some(TxState::None | TxState::Voting | TxState::Aborted)) {
                self.book.txns.record_outcome(tx, TxOutcome::Aborted(AbortReason::NodeDown));
            }
        }
        Ok(())
    }

    /// A transaction undecided at the master that no node can commit any more: every node
    /// of it runs, none waits on it, none of its messages is in a channel, and each says
    /// `NONE` or `ABORTED` (so no participant holds a YES). That is an abort, which nobody
    /// would report otherwise: a Paxos Commit coordinator restarted with nothing logged,
    /// whose only participant to vote voted NO (fault script 2843).
    fn nobody_holds_it(&mut self, txs: &[TxnId]) -> Result<(), Fatal> {
        for &tx in txs {
            let nodes = self.book.txns.nodes(tx);
            let chans = self.book.txns.channels(tx);
            let ledger = &self.sys().ledger;
            let carried = ledger.carries(&chans, tx);
            let all_run = nodes.iter().all(|&n| ledger.runs(n));
            if self.book.txns.outcomes.contains_key(&tx) || carried || !all_run {
                continue;
            }
            let states = self.query(&nodes, Some(tx))?;
            let waits = std::mem::take(&mut self.answers.waiting).iter().any(|&(t, _)| t == tx);
            let over = states
                .iter()
                .all(|q| matches!(q.tx, Some(TxState::None | TxState::Voting | TxState::Aborted)));
            if over && !waits {
                self.book.txns.record_outcome(tx, TxOutcome::Aborted(AbortReason::NodeDown));
            }
        }
        Ok(())
    }

    /// Before `Restart`: a running process is killed (as `Crash` would, in either mode),
    /// every answer is in, and the old process's link has reported its close.
    pub fn stop_for_restart(&mut self, node: NodeId) -> Result<(), Fatal> {
        match (self.sys().ledger.is_down(node), self.is_live()) {
            (true, _) => {}
            (false, true) => self.crash_live(node)?,
            (false, false) => self.crash(node)?,
        }
        self.barrier()?;
        while self.sys().closing(node) {
            self.wait_one()?;
        }
        Ok(())
    }

    /// `Pause`/`Resume node`.
    pub fn pause_cmd(&mut self, node: NodeId, pause: bool) -> Result<Result<(), Rejection>, Fatal> {
        let ledger = &self.sys().ledger;
        if ledger.is_down(node) {
            return Ok(Err(Rejection::Down(node)));
        }
        if ledger.is_paused(node) == pause {
            let state = if pause { "already paused" } else { "not paused" };
            return Ok(Err(format!("node {node} is {state}").into()));
        }
        if pause {
            self.book.txns.faults = true;
            // Every earlier command has run and been answered (a stopped process answers
            // nothing); then SIGSTOP; what waits on the node times out at once.
            self.settle()?;
        }
        self.sys().signal(node, pause)?;
        self.sys().ledger.pause(node, pause);
        self.trace(vec![if pause {
            TraceEvent::Pause { node }
        } else {
            TraceEvent::Resume { node }
        }]);
        // Paused: what waits on it times out; resumed: what waited for it is delivered.
        let txs = self.unfinished_with(&[node], true);
        self.drive(&txs).map(Ok)
    }

    /// `Partition nodes`: they are cut off from the rest; what waits across the cut
    /// times out at once.
    pub fn partition(&mut self, nodes: &[NodeId]) -> Result<(), Fatal> {
        self.book.txns.faults = true;
        self.sys().ledger.partition(nodes);
        let mut ids = nodes.to_vec();
        ids.sort();
        ids.dedup();
        self.trace(vec![TraceEvent::Partition { nodes: ids }]);
        let txs: Vec<TxnId> = self
            .unfinished_with(nodes, true)
            .into_iter()
            .filter(|&tx| self.book.txns.nodes(tx).iter().any(|n| !nodes.contains(n)))
            .collect();
        self.drive(&txs)
    }

    /// `Heal`: every cut ends; what waited in the channels across them is delivered, in
    /// order, to the transactions that need it.
    pub fn heal(&mut self) -> Result<(), Fatal> {
        if self.sys().ledger.heal() {
            self.trace(vec![TraceEvent::Heal]);
        }
        let all: Vec<NodeId> = self.sys().ledger.nodes().collect();
        let txs = self.unfinished_with(&all, true);
        self.drive(&txs)
    }

    /// `Crash` in live mode: the process is killed now; its peers see its links close;
    /// it forgets what it recorded, and its share of a load ends with its last progress.
    pub fn crash_live(&mut self, node: NodeId) -> Result<(), Fatal> {
        self.barrier()?;
        self.collect_costs(&[node])?;
        let outs: Vec<Out> = self.node_died(node);
        self.lose_snapshots(node);
        if let Some(run) = self.live.as_mut().and_then(|l| l.load.as_mut()) {
            run.node_gone(node);
        }
        self.push_done(outs, false);
        Ok(())
    }

    /// No snapshot begun so far can be gathered whole (`node` crashed or restarted in
    /// live mode): the next `CollectState` says so.
    pub fn lose_snapshots(&mut self, node: NodeId) {
        for k in std::mem::take(&mut self.book.snaps.since_collect) {
            self.book.snaps.lost.push((k, node));
        }
    }
}
