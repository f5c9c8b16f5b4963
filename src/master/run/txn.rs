//! The transaction and fault commands of the master (SPEC chapter 5): `Transfer` and the
//! delivery loop that drives transactions to their end, logical timeouts, `Crash`,
//! `Restart`, `Lose`, and the queries behind `Balances`, `TxStatus` and `Check`.
//! A child of `run`: the same `Master`, its other concern.

use super::*;

/// The transactions of the running system, as their coordinators reported them.
#[derive(Default)]
pub(super) struct Txns {
    pub(super) next: u64,
    pub(super) specs: HashMap<TxnId, TxSpec>,
    pub(super) outcomes: HashMap<TxnId, TxOutcome>,
    pub(super) commits: u64,
    pub(super) aborts: BTreeMap<&'static str, u64>,
    /// Transfers that ended their command IN-DOUBT.
    pub(super) in_doubt: u64,
    /// Messages resent to restarted nodes.
    pub(super) retransmissions: u64,
    /// A Crash, CrashAt, Lose or Hold has happened in this system: transactions may
    /// wait on something other than a message in a channel.
    pub(super) faults: bool,
}

impl Master {
    /// `Transfer`, numbered `T<n>` (the debit node coordinates unless `via`): the
    /// coordinator starts it; then, unless `nowait`, the heads of the channels among its
    /// nodes are delivered in the order they were enqueued, exactly as `Receive` would,
    /// until it is decided and none of its messages is left in them. In live mode, see
    /// `transfer_live`.
    pub(super) fn transfer(
        &mut self,
        from: NodeId,
        to: NodeId,
        amount: Amount,
        via: Option<NodeId>,
        nowait: bool,
    ) -> Result<(), Fatal> {
        self.txns.next += 1;
        let spec =
            TxSpec { tx: TxnId(self.txns.next), from, to, amount, coord: via.unwrap_or(from) };
        self.txns.specs.insert(spec.tx, spec);
        if self.is_live() {
            return self.transfer_live(spec, nowait);
        }
        let tx = spec.tx;
        if self.is_down(spec.coord) {
            // Nobody can coordinate it: it aborts before it starts.
            self.record_outcome(tx, TxOutcome::Aborted(AbortReason::NodeDown));
        } else if !nowait && self.can_drive(&spec) {
            // Nothing earlier may still wait to run at the other participant: it would
            // run after the transaction's messages, not before as in stepwise delivery.
            self.barrier()?;
            let slot = self.push_await(Expect::TxRun { spec });
            self.sys().command(spec.coord, Control::Transfer { spec, drive: true }, slot)?;
            self.wait_slot(slot)?;
        } else {
            let slot = self.push_await(Expect::TxStep { spec, nowait });
            let start = Control::Transfer { spec, drive: false };
            self.sys().command(spec.coord, start, slot)?;
            self.wait_slot(slot)?;
            if nowait {
                return Ok(());
            }
            self.drive(&[tx])?;
        }
        let outcome = self.txns.outcomes.get(&tx).copied();
        if outcome.is_none() {
            self.txns.in_doubt += 1;
        }
        self.push_done(vec![Out::Line(output::transfer(tx, outcome))], false);
        Ok(())
    }

    /// Whether `spec` can run node to node, its messages delivered as they arrive, with
    /// the same result and the same state after it as the master's step-by-step delivery:
    /// two nodes (the coordinator is one of them), both up, the channels between them
    /// empty (so their heads are the transaction's own messages, in the same order),
    /// and nothing that could step in: no fault has happened (no crash point armed, no
    /// loss or hold) and no trace asks for each delivery.
    fn can_drive(&self, spec: &TxSpec) -> bool {
        let ledger = &self.system.as_ref().expect("a Transfer runs in a system").ledger;
        let (a, b) = (spec.from, spec.to);
        !self.txns.faults
            && !self.tracing()
            && [a, b].contains(&spec.coord)
            && !self.is_down(a)
            && !self.is_down(b)
            && ledger.is_empty((a, b))
            && ledger.is_empty((b, a))
    }

    /// Waits for every earlier answer, and until the nodes of driven transfers (which
    /// answer at the decision) are done with them: before a process is killed.
    pub(super) fn settle(&mut self) -> Result<(), Fatal> {
        for n in std::mem::take(&mut self.unsettled) {
            if self.system.is_some() && !self.is_down(n) {
                let slot = self.push_await(Expect::Settled);
                self.sys().command(n, Control::Query { tx: None }, slot)?;
            }
        }
        self.barrier()
    }

    /// A transaction's nodes (participants and coordinator), by id.
    pub(super) fn tx_nodes(spec: &TxSpec) -> Vec<NodeId> {
        let mut nodes = vec![spec.from, spec.to, spec.coord];
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// The channels among a transaction's nodes.
    pub(super) fn tx_channels(spec: &TxSpec) -> Vec<ChannelId> {
        let nodes = Self::tx_nodes(spec);
        nodes
            .iter()
            .flat_map(|&a| nodes.iter().filter(move |&&b| b != a).map(move |&b| (a, b)))
            .collect()
    }

    /// Delivers what transactions `txs` need, as `Receive` would: the heads of the
    /// channels among their nodes, oldest first, into nodes that are up, until each is
    /// decided and none of its messages is left there. When nothing more can be delivered,
    /// the nodes that still wait on one of them (as they say) time out at once, logical
    /// time: a voting coordinator aborts (`node-down` if one of its nodes is down, else
    /// `timeout`), a committed one resends its decision, a participant in doubt asks.
    pub(super) fn drive(&mut self, txs: &[TxnId]) -> Result<(), Fatal> {
        let mut timed_out = std::collections::BTreeSet::new();
        for step in 0.. {
            if step > 1_000_000 {
                return Err(Fatal(format!("bug: {txs:?} did not end after {step} deliveries")));
            }
            let mut chans = Vec::new();
            for tx in txs {
                let c = Self::tx_channels(&self.txns.specs[tx]);
                if !self.txns.outcomes.contains_key(tx) || self.sys().ledger.carries(&c, *tx) {
                    chans.extend(c);
                }
            }
            if let Some(c) = self.sys().ledger.oldest_head(&chans) {
                self.deliver(c, false)?;
                continue;
            }
            // Without a fault (no crash, loss or hold), a decided transaction whose
            // messages have all been delivered leaves nobody waiting: skip asking.
            if !self.txns.faults && txs.iter().all(|t| self.txns.outcomes.contains_key(t)) {
                return Ok(());
            }
            // Nothing can be delivered: whoever still waits on these transactions (a
            // coordinator voting or missing acks, a participant in doubt) times out, once
            // each, the coordinator first: while voting it aborts; otherwise it resends its
            // decision, and a participant asks the coordinator.
            let mut nodes: Vec<NodeId> = txs
                .iter()
                .flat_map(|tx| Self::tx_nodes(&self.txns.specs[tx]))
                .filter(|&n| !self.is_down(n))
                .collect();
            nodes.sort();
            nodes.dedup();
            self.query(&nodes, None)?;
            let waiting = std::mem::take(&mut self.waiting);
            // (is a participant, tx, node): coordinators sort first.
            let mut next = waiting
                .iter()
                .filter(|(t, n)| txs.contains(t) && !timed_out.contains(&(*t, *n)))
                .map(|&(t, n)| (self.txns.specs[&t].coord != n, t, n))
                .collect::<Vec<_>>();
            next.sort();
            let Some(&(_, tx, node)) = next.first() else {
                return Ok(()); // nothing waits, or only on nodes that are down
            };
            let spec = self.txns.specs[&tx];
            timed_out.insert((spec.tx, node));
            let slot = self.push_await(Expect::TxStep { spec, nowait: false });
            // Waiting on a node that is down, or on a channel that holds its messages.
            let reason = if [spec.from, spec.to, spec.coord].iter().any(|&n| self.is_down(n)) {
                AbortReason::NodeDown
            } else {
                AbortReason::Timeout
            };
            let timeout = Control::Timeout { tx: spec.tx, reason };
            self.sys().command(node, timeout, slot)?;
            self.wait_slot(slot)?;
        }
        Ok(())
    }

    pub(super) fn is_down(&self, node: NodeId) -> bool {
        self.system.as_ref().is_some_and(|s| s.ledger.is_down(node))
    }

    pub(super) fn record_outcome(&mut self, tx: TxnId, outcome: TxOutcome) {
        if !self.txns.specs.contains_key(&tx) {
            return; // a load's transaction: the load's summary counts it
        }
        if self.txns.outcomes.insert(tx, outcome).is_none() {
            match outcome {
                TxOutcome::Committed => self.txns.commits += 1,
                TxOutcome::Aborted(r) => *self.txns.aborts.entry(r.as_str()).or_default() += 1,
            }
        }
    }

    /// `Lose`: the head of the channel is lost on the way. Channels never lose money or
    /// markers; a two-phase-commit control message can be lost, and the protocol copes.
    pub(super) fn lose(
        &mut self,
        line: usize,
        text: &str,
        from: NodeId,
        to: NodeId,
    ) -> Result<(), Fatal> {
        let head = self.sys().ledger.head((from, to));
        let lossy = matches!(head, Some(ChannelMsg::Tx(m)) if m.money().is_none());
        if !lossy {
            let why = match head {
                None => format!("channel {from} -> {to} is empty"),
                Some(_) => format!(
                    "the head of channel {from} -> {to} carries money or is a marker; \
                     only two-phase-commit control messages can be lost"
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
        let mut outs = Vec::new();
        self.node_died(node, &mut outs);
        self.push_done(outs, false);
        Ok(())
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
        let mine: Vec<TxnId> = self
            .txns
            .specs
            .values()
            .filter(|s| [s.from, s.to, s.coord].contains(&node))
            .map(|s| s.tx)
            .collect();
        self.drive(&mine)?;
        // Presumed abort: a coordinator that restarted with no decision logged for a
        // transaction it started has aborted it, whether or not anyone asks it.
        let mut undecided: Vec<TxnId> = mine
            .into_iter()
            .filter(|t| self.txns.specs[t].coord == node && !self.txns.outcomes.contains_key(t))
            .collect();
        undecided.sort();
        for tx in undecided {
            let state = self.query(&[node], Some(tx))?.pop().and_then(|q| q.3);
            if matches!(state.as_deref(), Some("NONE" | "ABORTED")) {
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

    /// Asks `nodes` for their balance, held money and (if given) the state of `tx`, after
    /// every earlier command; returns the answers by node.
    #[allow(clippy::type_complexity)]
    pub(super) fn query(
        &mut self,
        nodes: &[NodeId],
        tx: Option<TxnId>,
    ) -> Result<Vec<(NodeId, Amount, Amount, Option<String>)>, Fatal> {
        self.queried.clear();
        self.waiting.clear();
        for &n in nodes {
            let slot = self.push_await(Expect::Query);
            self.sys().command(n, Control::Query { tx }, slot)?;
        }
        self.barrier()?;
        let mut got = std::mem::take(&mut self.queried);
        got.sort_by_key(|q| q.0);
        Ok(got)
    }

    pub(super) fn tx_status(&mut self, spec: TxSpec) -> Result<(), Fatal> {
        let nodes = Self::tx_nodes(&spec);
        let up: Vec<NodeId> = nodes.iter().copied().filter(|&n| !self.is_down(n)).collect();
        let states = self.query(&up, Some(spec.tx))?;
        let overall = match self.txns.outcomes.get(&spec.tx) {
            Some(TxOutcome::Committed) => "COMMITTED",
            Some(TxOutcome::Aborted(_)) => "ABORTED",
            None if self.is_down(spec.coord) => "IN-DOUBT",
            None => "PENDING",
        };
        let mut line = format!("{} {overall}", spec.tx);
        for n in nodes {
            let st = states.iter().find(|q| q.0 == n).and_then(|q| q.3.clone());
            line.push_str(&format!(" node {n}={}", st.unwrap_or_else(|| "DOWN".to_string())));
        }
        self.push_done(vec![Out::Line(line)], false);
        Ok(())
    }

    /// `Check`: no verdict while a node is down; in a script, every node's money (held
    /// included) plus the money in the channels (each transaction's credit once), held
    /// against all money created; in live mode, a snapshot's (`check_live`).
    pub(super) fn check(&mut self) -> Result<(), Fatal> {
        self.barrier()?;
        if let Some(&n) = self.sys().ledger.down().first() {
            self.push_done(vec![Out::Line(format!("CHECK UNAVAILABLE node {n} is down"))], false);
            return Ok(());
        }
        if self.is_live() {
            return self.check_live();
        }
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        let states = self.query(&nodes, None)?;
        let mut total = self.sys().ledger.money_in_channels();
        let mut why = Vec::new();
        for (n, balance, held, _) in states {
            total = total.checked_add(balance).unwrap_or(Amount::MAX);
            let ledger = &self.sys().ledger;
            if (ledger.balance(n), ledger.held(n)) != (balance, held) {
                why.push(format!(
                    "node {n} holds {balance} ({held} held), the master's ledger says {} ({} held)",
                    ledger.balance(n),
                    ledger.held(n)
                ));
            }
        }
        let line = self.check_line(total, why);
        self.push_done(vec![Out::Line(line)], false);
        Ok(())
    }

    /// A `Check` verdict: `total` counted, against all money created, and `why` else it
    /// failed. A failure (a bug) makes the exit status 1.
    pub(super) fn check_line(&mut self, total: Amount, mut why: Vec<String>) -> String {
        let created = self.sys().ledger.created();
        if total != created {
            why.insert(0, format!("total={total} created={created}"));
        }
        if why.is_empty() {
            format!("CHECK OK total={total}")
        } else {
            self.rejected = true;
            format!("CHECK FAILED {}", why.join("; "))
        }
    }

    /// A node's report of a two-phase-commit step: into the ledger, the trace and the
    /// transaction table.
    pub(super) fn apply_tx_report(&mut self, node: NodeId, r: TxReport, outs: &mut Vec<Out>) {
        if self.is_live() {
            // The ledger follows no channel in live mode.
            if let Some((tx, outcome)) = r.decided {
                self.record_outcome(tx, outcome);
            }
            return;
        }
        let held_before = self.sys().ledger.held(node);
        self.sys().ledger.apply_tx(node, &r.sent, r.balance, r.held);
        if self.tracing() && held_before != r.held {
            outs.push(Out::Trace(TraceEvent::Held { node, amount: r.held }));
        }
        if self.tracing() {
            for &(to, m) in &r.sent {
                outs.push(Out::Trace(TraceEvent::Send { from: node, to, msg: ChannelMsg::Tx(m) }));
            }
        }
        if let Some((tx, outcome)) = r.decided {
            self.record_outcome(tx, outcome);
        }
    }
}
