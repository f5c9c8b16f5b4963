//! The fault commands of the master (SPEC chapters 5 and 8): `Crash`, `Restart`, `Lose`,
//! `Pause`/`Resume` (SIGSTOP/SIGCONT) and `Partition`/`Heal` (channels across a cut wait,
//! in order). A fault that leaves a transaction waiting on a node that is down, paused or
//! cut off drives it at once, with logical timeouts (chapter 8), except two-phase
//! commit's on `Crash`, which chapter 5 leaves to the next `Transfer` or `Restart`.
//! A child of `run`: the same `Master`, its other concern.

use super::*;
use crate::wire::{Protocol, TxState};

impl Master {
    /// `Lose`: the head of the channel is lost on the way. Channels never lose money or
    /// markers; a commit protocol's control message can be lost, and the protocol copes.
    pub(super) fn lose(
        &mut self,
        line: usize,
        text: &str,
        from: NodeId,
        to: NodeId,
    ) -> Result<(), Fatal> {
        let head = self.sys().ledger.head((from, to)).cloned();
        let lossy = matches!(&head, Some(ChannelMsg::Commit(m)) if m.money().is_none());
        if !lossy {
            let why = match head {
                None => format!("channel {from} -> {to} is empty"),
                Some(_) => format!(
                    "the head of channel {from} -> {to} carries money or is a marker; \
                     only commit-protocol control messages can be lost"
                ),
            };
            self.reject(line, text, why);
            return Ok(());
        }
        // A message that died with a process, or waits to be sent again, is nowhere but
        // in the ledger: the receiver has nothing to drop.
        let only_here = self.is_down(to) || self.sys().ledger.is_lost((from, to));
        self.sys().ledger.discard((from, to));
        if !only_here {
            let slot = self.push_await(Expect::Ready(Vec::new()));
            self.sys().command(to, Control::Discard { from }, slot)?;
        }
        if self.tracing() {
            let msg = head.expect("checked above");
            self.push_done(vec![Out::Trace(TraceEvent::Lose { from, to, msg })], false);
        }
        Ok(())
    }

    /// `Crash`: the node's process is SIGKILLed after every earlier command ran (it
    /// answers a query first: commands whose outcome was predicted are not answered).
    pub(super) fn crash(&mut self, node: NodeId) -> Result<(), Fatal> {
        self.settle()?;
        if self.runs(node) {
            self.collect_costs(&[node])?;
        }
        let mut outs = Vec::new();
        self.node_died(node, &mut outs);
        self.push_done(outs, false);
        // Three-phase commit and Paxos Commit finish without the node, at once (logical
        // time); two-phase commit waits for a command that drives it (chapter 5).
        let txs = self.unfinished_with(&[node], false);
        self.drive(&txs)
    }

    /// Bookkeeping for a node whose process is gone (killed, or dead at a crash point).
    pub(super) fn node_died(&mut self, node: NodeId, outs: &mut Vec<Out>) {
        let sys = self.sys();
        sys.kill_node(node);
        sys.expect_close(node);
        let lost = sys.ledger.crash(node);
        for k in lost {
            if self.since_collect.contains(&k) {
                self.since_collect.retain(|&x| x != k);
                self.lost_snapshots.push((k, node));
            }
        }
        if self.tracing() {
            outs.push(Out::Trace(TraceEvent::Crash { node }));
        }
    }

    /// `Restart`: a new process for the node, recovered from its log; what was in flight
    /// to it is sent again; then its unfinished transactions get what they need.
    pub(super) fn restart(&mut self, node: NodeId) -> Result<(), Fatal> {
        self.stop_for_restart(node)?;
        let resends = self.sys().ledger.restart(node);
        let peers: Vec<NodeId> = self.sys().ledger.nodes().filter(|&x| x != node).collect();
        let down = self.sys().ledger.down();
        let own: Vec<(NodeId, Vec<ChannelMsg>)> = resends
            .iter()
            .filter(|r| r.0 == node && !r.3.is_empty())
            .map(|r| (r.1, r.3.clone()))
            .collect();
        self.sys().restart_node(node)?;
        if self.tracing() {
            self.push_done(vec![Out::Trace(TraceEvent::Restart { node })], false);
        }
        let slot = self.push_await(Expect::Ready(Vec::new()));
        let setup = Control::Setup { peers, join: Vec::new(), down, resend: own, live: false };
        self.sys().command(node, setup, slot)?;
        self.wait_slot(slot)?;
        // Every process linked to the restarted node waits for its new link before its
        // next command, so nothing goes into a stale link to the dead process.
        for (from, to, gen, msgs) in resends {
            self.txns.retransmissions += msgs.len() as u64;
            if from != node {
                let slot = self.push_await(Expect::Ready(Vec::new()));
                self.sys().command(from, Control::Resend { to, gen, msgs }, slot)?;
            }
        }
        let gen = self.sys().starts(node);
        let slot = self.push_await(Expect::Relinked);
        self.sys().observe(ObserverRequest::Relink { node, gen }, slot)?;
        let mut mine: Vec<TxnId> = self
            .txns
            .specs
            .keys()
            .copied()
            .filter(|&tx| self.tx_nodes(tx).contains(&node))
            .collect();
        mine.sort();
        self.drive(&mine)?;
        // Presumed abort: a coordinator that restarted with no decision logged for a
        // transaction it started has aborted it, whether or not anyone asks it (not so in
        // Paxos Commit, where the participants' ballots may still commit it).
        let undecided: Vec<TxnId> = mine
            .iter()
            .copied()
            .filter(|t| self.txns.specs[t].coord == node && !self.txns.outcomes.contains_key(t))
            .filter(|&t| self.protocol_of(t) != Protocol::Paxos)
            .collect();
        for tx in undecided {
            let state = self.query(&[node], Some(tx))?.pop().and_then(|q| q.3);
            if matches!(state, Some(TxState::None | TxState::Voting | TxState::Aborted)) {
                self.record_outcome(tx, TxOutcome::Aborted(AbortReason::NodeDown));
            }
        }
        self.nobody_holds_it(&mine)
    }

    /// A transfer undecided at the master that no node can commit any more: every node
    /// of it runs, none waits on it, none of its messages is in a channel, and each says
    /// `NONE` or `ABORTED` (so no participant holds a YES). That is an abort, which nobody
    /// would report otherwise: a Paxos Commit coordinator restarted with nothing logged,
    /// whose only participant to vote voted NO (fault script 2843).
    fn nobody_holds_it(&mut self, txs: &[TxnId]) -> Result<(), Fatal> {
        for &tx in txs {
            let nodes = self.tx_nodes(tx);
            let chans = self.tx_channels(tx);
            let carried = self.sys().ledger.carries(&chans, tx);
            if self.txns.outcomes.contains_key(&tx)
                || carried
                || !nodes.iter().all(|&n| self.runs(n))
            {
                continue;
            }
            let states = self.query(&nodes, Some(tx))?;
            let waits = std::mem::take(&mut self.waiting).iter().any(|&(t, _)| t == tx);
            let over = states
                .iter()
                .all(|q| matches!(q.3, Some(TxState::None | TxState::Voting | TxState::Aborted)));
            if over && !waits {
                self.record_outcome(tx, TxOutcome::Aborted(AbortReason::NodeDown));
            }
        }
        Ok(())
    }

    /// Before `Restart`: a running process is killed (as `Crash` would, in either mode),
    /// every answer is in, and the old process's link has reported its close.
    pub(super) fn stop_for_restart(&mut self, node: NodeId) -> Result<(), Fatal> {
        match (self.is_down(node), self.is_live()) {
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

    /// `Pause`: every earlier command has run and been answered (a stopped process
    /// answers nothing); then SIGSTOP; what waits on the node times out at once.
    pub(super) fn pause(&mut self, node: NodeId) -> Result<(), Fatal> {
        self.settle()?;
        self.sys().signal(node, true)?;
        self.sys().ledger.pause(node, true);
        self.trace_fault(TraceEvent::Pause { node });
        let txs = self.unfinished_with(&[node], true);
        self.drive(&txs)
    }

    /// `Resume`: SIGCONT; the node carries on from where it was, and what waited for it
    /// is delivered (its transactions driven, as `Restart` does).
    pub(super) fn resume(&mut self, node: NodeId) -> Result<(), Fatal> {
        self.sys().signal(node, false)?;
        self.sys().ledger.pause(node, false);
        self.trace_fault(TraceEvent::Resume { node });
        let txs = self.unfinished_with(&[node], true);
        self.drive(&txs)
    }

    /// `Partition`: `nodes` are cut off from the rest; what waits across the cut times
    /// out at once.
    pub(super) fn partition(&mut self, nodes: &[NodeId]) -> Result<(), Fatal> {
        self.sys().ledger.partition(nodes);
        let mut ids = nodes.to_vec();
        ids.sort();
        ids.dedup();
        self.trace_fault(TraceEvent::Partition { nodes: ids });
        let txs: Vec<TxnId> = self
            .unfinished_with(nodes, true)
            .into_iter()
            .filter(|&tx| self.tx_nodes(tx).iter().any(|n| !nodes.contains(n)))
            .collect();
        self.drive(&txs)
    }

    /// `Heal`: every cut ends; what waited in the channels across them is delivered, in
    /// order, to the transactions that need it.
    pub(super) fn heal(&mut self) -> Result<(), Fatal> {
        if self.sys().ledger.heal() {
            self.trace_fault(TraceEvent::Heal);
        }
        let all: Vec<NodeId> = self.sys().ledger.nodes().collect();
        let txs = self.unfinished_with(&all, true);
        self.drive(&txs)
    }

    /// Traces a fault that is the master's own doing, in its place among the events.
    fn trace_fault(&mut self, ev: TraceEvent) {
        if self.tracing() {
            self.push_done(vec![Out::Trace(ev)], false);
        }
    }
}
