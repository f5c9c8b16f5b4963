//! The transaction commands of the master (SPEC chapters 5 and 8): `Transfer` under
//! each protocol and the delivery loop that drives transactions to their end with
//! logical timeouts, and the queries behind `TxStatus`, `Check` and `Stats`. The faults
//! (`Crash`, `Restart`, `Lose`, `Pause`, `Partition`, …) are `faults.rs`.
//! A child of `run`: the same `Master`, its other concern.

use super::*;
use crate::wire::{Protocol, TxState};

/// The transactions of the running system, as their nodes reported them.
#[derive(Default)]
pub(super) struct Txns {
    pub(super) next: u64,
    pub(super) specs: HashMap<TxnId, TxSpec>,
    /// The protocol of each transaction that does not run by two-phase commit, with its
    /// Paxos Commit acceptors.
    pub(super) runs_by: HashMap<TxnId, (Protocol, [NodeId; 3])>,
    pub(super) outcomes: HashMap<TxnId, TxOutcome>,
    pub(super) commits: u64,
    /// Commits per protocol (`Protocol::ALL` order), loads' included.
    pub(super) committed_by: [u64; 3],
    pub(super) aborts: BTreeMap<&'static str, u64>,
    /// Transfers that ended their command IN-DOUBT.
    pub(super) in_doubt: u64,
    /// Messages resent to restarted nodes.
    pub(super) retransmissions: u64,
    /// A Crash, CrashAt, Lose or Hold has happened in this system: transactions may
    /// wait on something other than a message in a channel.
    pub(super) faults: bool,
    /// The protocol of Transfers that name none (`Protocol`; 2pc at `StartMaster`).
    pub(super) protocol: Protocol,
    /// A three-phase commit has run (a Transfer or a load's): it may have split, and
    /// the money its credit carried is then gone (SPEC chapter 8).
    pub(super) three_pc_ran: bool,
    /// Transfers whose credit a node dropped (traced once: a resent credit is dropped
    /// again, but it is the same money).
    pub(super) dropped: std::collections::HashSet<TxnId>,
}

/// How many times one node may time out on one transaction while one command drives it:
/// two-phase commit needs one (a participant asks, a coordinator aborts or resends);
/// three-phase commit's elections and Paxos Commit's ballots may need another round.
fn timeouts_allowed(protocol: Protocol) -> u32 {
    match protocol {
        Protocol::TwoPc => 1,
        Protocol::ThreePc | Protocol::Paxos => 3,
    }
}

impl Master {
    /// `Transfer`, numbered `T<n>` (the debit node coordinates unless `via`), by
    /// `protocol`: the coordinator starts it; then, unless `nowait`, the heads of the
    /// channels among its nodes are delivered in the order they were enqueued, exactly as
    /// `Receive` would, until it is decided and none of its messages is left in them. In
    /// live mode, see `transfer_live`. The caller checked that Paxos Commit has three
    /// nodes.
    pub(super) fn transfer(
        &mut self,
        from: NodeId,
        to: NodeId,
        amount: Amount,
        via: Option<NodeId>,
        nowait: bool,
        protocol: Protocol,
    ) -> Result<(), Fatal> {
        self.txns.next += 1;
        let spec = TxSpec::transfer(TxnId(self.txns.next), from, to, amount, via.unwrap_or(from));
        self.txns.specs.insert(spec.tx, spec.clone());
        let acceptors = self.acceptors(&spec);
        self.txns.three_pc_ran |= protocol == Protocol::ThreePc;
        if protocol != Protocol::TwoPc {
            self.txns.runs_by.insert(spec.tx, (protocol, acceptors));
        }
        if self.is_live() {
            return self.transfer_live(spec, nowait, protocol);
        }
        let start = Control::Transfer { spec: spec.clone(), drive: false, protocol };
        let tx = spec.tx;
        if !self.runs(spec.coord) {
            // Nobody can coordinate it: it aborts before it starts.
            self.record_outcome(tx, TxOutcome::Aborted(AbortReason::NodeDown));
        } else if !nowait && protocol == Protocol::TwoPc && self.can_drive(&spec) {
            // Nothing earlier may still wait to run at the other participant: it would
            // run after the transaction's messages, not before as in stepwise delivery.
            self.barrier()?;
            let slot = self.push_await(Expect::TxRun { spec: spec.clone() });
            let run = Control::Transfer { spec: spec.clone(), drive: true, protocol };
            self.sys().command(spec.coord, run, slot)?;
            self.wait_slot(slot)?;
        } else {
            let coord = spec.coord;
            let slot = self.push_await(Expect::TxStep { spec, nowait });
            self.sys().command(coord, start, slot)?;
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

    /// Paxos Commit's acceptors for `spec` (the rule is `paxos_commit::acceptors`).
    pub(super) fn acceptors(&self, spec: &TxSpec) -> [NodeId; 3] {
        let ledger = &self.system.as_ref().expect("a Transfer runs in a system").ledger;
        let nodes: Vec<NodeId> = ledger.nodes().collect();
        crate::protocol::paxos_commit::acceptors(spec, &nodes)
    }

    /// The protocol `tx` runs by.
    pub(super) fn protocol_of(&self, tx: TxnId) -> Protocol {
        self.txns.runs_by.get(&tx).map_or(Protocol::TwoPc, |r| r.0)
    }

    /// Whether `spec` can run node to node, its messages delivered as they arrive, with
    /// the same result and the same state after it as the master's step-by-step delivery:
    /// two nodes (the coordinator is one of them), both up, the channels between them
    /// empty (so their heads are the transaction's own messages, in the same order),
    /// and nothing that could step in: no fault has happened (no crash point armed, no
    /// loss or hold) and no trace asks for each delivery.
    fn can_drive(&self, spec: &TxSpec) -> bool {
        let ledger = &self.system.as_ref().expect("a Transfer runs in a system").ledger;
        let parts: Vec<NodeId> = spec.participants().collect();
        let &[a, b] = parts.as_slice() else { return false };
        !self.txns.faults
            && !self.tracing()
            && [a, b].contains(&spec.coord)
            && self.runs(a)
            && self.runs(b)
            && ledger.is_empty((a, b))
            && ledger.is_empty((b, a))
    }

    /// Waits for every earlier answer, and until the nodes of driven transfers (which
    /// answer at the decision) are done with them: before a process is killed.
    pub(super) fn settle(&mut self) -> Result<(), Fatal> {
        for n in std::mem::take(&mut self.unsettled) {
            if self.system.is_some() && self.runs(n) {
                let slot = self.push_await(Expect::Settled);
                self.sys().command(n, Control::Query { tx: None }, slot)?;
            }
        }
        self.barrier()
    }

    /// A transaction's nodes (participants, coordinator, and Paxos Commit's third
    /// acceptor), by id.
    pub(super) fn tx_nodes(&self, tx: TxnId) -> Vec<NodeId> {
        let spec = &self.txns.specs[&tx];
        let mut nodes = spec.members();
        if let Some((Protocol::Paxos, acceptors)) = self.txns.runs_by.get(&tx) {
            nodes.extend(acceptors);
        }
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// The channels among a transaction's nodes.
    pub(super) fn tx_channels(&self, tx: TxnId) -> Vec<ChannelId> {
        let nodes = self.tx_nodes(tx);
        nodes
            .iter()
            .flat_map(|&a| nodes.iter().filter(move |&&b| b != a).map(move |&b| (a, b)))
            .collect()
    }

    /// Delivers what transactions `txs` need, as `Receive` would: the heads of the
    /// channels among their nodes, oldest first, into nodes that run and are not cut off,
    /// until each is decided and none of its messages is left there. When nothing more
    /// can be delivered, the first node that still waits on one of them (as it says;
    /// coordinators first, then by transaction and id) times out at once, logical time,
    /// knowing which nodes it can reach: a voting coordinator aborts (`node-down` if one
    /// of its nodes is down, paused or cut off from it, else `timeout`), a committed one
    /// resends its decision, a participant asks, three-phase commit's participants elect
    /// a leader, Paxos Commit's lead a ballot. Each node times out a bounded number of
    /// times per transaction ([`timeouts_allowed`]), so this ends.
    pub(super) fn drive(&mut self, txs: &[TxnId]) -> Result<(), Fatal> {
        let mut timed_out: HashMap<(TxnId, NodeId), u32> = HashMap::default();
        for step in 0.. {
            if step > 1_000_000 {
                return Err(Fatal(format!("bug: {txs:?} did not end after {step} deliveries")));
            }
            let mut chans = Vec::new();
            for tx in txs {
                let c = self.tx_channels(*tx);
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
            let mut nodes: Vec<NodeId> =
                txs.iter().flat_map(|&tx| self.tx_nodes(tx)).filter(|&n| self.runs(n)).collect();
            nodes.sort();
            nodes.dedup();
            self.query(&nodes, None)?;
            let waiting = std::mem::take(&mut self.waiting);
            // (is not its coordinator, tx, node): coordinators sort first.
            let mut next = waiting
                .iter()
                .filter(|(t, n)| {
                    let left = timeouts_allowed(self.protocol_of(*t));
                    txs.contains(t) && timed_out.get(&(*t, *n)).copied().unwrap_or(0) < left
                })
                .map(|&(t, n)| (self.txns.specs[&t].coord != n, t, n))
                .collect::<Vec<_>>();
            next.sort();
            let Some(&(_, tx, node)) = next.first() else {
                return Ok(()); // nothing waits, or only on nodes that are down
            };
            let spec = self.txns.specs[&tx].clone();
            *timed_out.entry((tx, node)).or_default() += 1;
            let slot = self.push_await(Expect::TxStep { spec, nowait: false });
            let reach = self.sys().ledger.reach(node);
            // Waiting on a node it cannot reach, or on a channel that holds its messages.
            let lost = self.tx_nodes(tx).iter().any(|&n| n != node && !reach.contains(&n));
            let reason = if lost { AbortReason::NodeDown } else { AbortReason::Timeout };
            let timeout = Control::Timeout { tx, reason, reach };
            self.sys().command(node, timeout, slot)?;
            self.wait_slot(slot)?;
        }
        Ok(())
    }

    /// The transactions not finished yet (undecided, or with messages in the channels
    /// among their nodes) that have a node in `nodes`, by number; `all_protocols`: two-
    /// phase commit's too (chapter 5 drives those only in `Transfer` and `Restart`).
    pub(super) fn unfinished_with(&self, nodes: &[NodeId], all_protocols: bool) -> Vec<TxnId> {
        let ledger = &self.system.as_ref().expect("a system runs").ledger;
        let mut txs: Vec<TxnId> = self
            .txns
            .specs
            .keys()
            .copied()
            .filter(|&tx| all_protocols || self.protocol_of(tx) != Protocol::TwoPc)
            .filter(|&tx| self.tx_nodes(tx).iter().any(|n| nodes.contains(n)))
            .filter(|&tx| {
                !self.txns.outcomes.contains_key(&tx)
                    || ledger.carries(&self.tx_channels(tx), tx)
                    || self.txns.faults
            })
            .collect();
        txs.sort();
        txs
    }

    pub(super) fn is_down(&self, node: NodeId) -> bool {
        self.system.as_ref().is_some_and(|s| s.ledger.is_down(node))
    }

    pub(super) fn is_paused(&self, node: NodeId) -> bool {
        self.system.as_ref().is_some_and(|s| s.ledger.is_paused(node))
    }

    /// Whether `node` takes commands and steps: up, and not paused.
    pub(super) fn runs(&self, node: NodeId) -> bool {
        !self.is_down(node) && !self.is_paused(node)
    }

    pub(super) fn record_outcome(&mut self, tx: TxnId, outcome: TxOutcome) {
        if !self.txns.specs.contains_key(&tx) {
            return; // a load's transaction: the load's summary counts it
        }
        // The first report stands: a later, contrary one is 3PC's split, which `Check`
        // reports; the summary lines and `TxStatus` keep what was printed first.
        if let std::collections::hash_map::Entry::Vacant(e) = self.txns.outcomes.entry(tx) {
            e.insert(outcome);
            match outcome {
                TxOutcome::Committed => {
                    self.txns.commits += 1;
                    self.txns.committed_by[self.protocol_of(tx).index()] += 1;
                }
                TxOutcome::Aborted(r) => *self.txns.aborts.entry(r.as_str()).or_default() += 1,
            }
        }
    }

    /// Asks `nodes` for their balance, held money and (if given) the state of `tx`, after
    /// every earlier command; returns the answers by node.
    #[allow(clippy::type_complexity)]
    pub(super) fn query(
        &mut self,
        nodes: &[NodeId],
        tx: Option<TxnId>,
    ) -> Result<Vec<(NodeId, Amount, Amount, Option<TxState>)>, Fatal> {
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
        let nodes = self.tx_nodes(spec.tx);
        let up: Vec<NodeId> = nodes.iter().copied().filter(|&n| self.runs(n)).collect();
        let states = self.query(&up, Some(spec.tx))?;
        let mut line = format!("{} {}", spec.tx, self.tx_overall(&spec));
        for n in nodes {
            let st = states.iter().find(|q| q.0 == n).and_then(|q| q.3);
            let absent = if self.is_paused(n) { "PAUSED" } else { "DOWN" };
            line.push_str(&format!(" node {n}={}", st.map_or(absent, |s| s.word())));
        }
        self.push_done(vec![Out::Line(line)], false);
        Ok(())
    }

    /// How a transaction stands, in `TxStatus`'s words: its outcome, else IN-DOUBT while
    /// its coordinator cannot answer, else PENDING.
    pub(super) fn tx_overall(&self, spec: &TxSpec) -> &'static str {
        match self.txns.outcomes.get(&spec.tx) {
            Some(TxOutcome::Committed) => "COMMITTED",
            Some(TxOutcome::Aborted(_)) => "ABORTED",
            None if !self.runs(spec.coord) => "IN-DOUBT",
            None => "PENDING",
        }
    }

    /// `Check`: no verdict while a node is down or paused; a transaction committed at one
    /// node and aborted at another is a split (`CHECK FAILED atomicity …`); else, in a
    /// script, every node's money (held included) plus the money in the channels (each
    /// transaction's credit once), held against all money created; in live mode, a
    /// snapshot's (`check_live`).
    pub(super) fn check(&mut self) -> Result<(), Fatal> {
        self.barrier()?;
        if let Some(&n) = self.sys().ledger.down().first() {
            self.push_done(vec![Out::Line(format!("CHECK UNAVAILABLE node {n} is down"))], false);
            return Ok(());
        }
        if let Some(&n) = self.sys().ledger.paused().first() {
            let line = format!("CHECK UNAVAILABLE node {n} is paused");
            self.push_done(vec![Out::Line(line)], false);
            return Ok(());
        }
        if let Some(line) = self.split()? {
            self.rejected = true;
            self.push_done(vec![Out::Line(line)], false);
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

    /// Every node's ended transactions held against each other's: the first transaction
    /// (by number) committed at one node and aborted at another, as `Check` prints it,
    /// naming the lowest such nodes.
    fn split(&mut self) -> Result<Option<String>, Fatal> {
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        self.ended.clear();
        for &n in &nodes {
            let slot = self.push_await(Expect::Ended);
            self.sys().command(n, Control::Ended, slot)?;
        }
        self.barrier()?;
        // Per transaction: the lowest node that committed it, and the lowest that aborted.
        let mut ends: BTreeMap<TxnId, (Option<NodeId>, Option<NodeId>)> = BTreeMap::new();
        for (n, list) in std::mem::take(&mut self.ended) {
            for (tx, st) in list {
                let e = ends.entry(tx).or_default();
                let slot = if st == TxState::Committed { &mut e.0 } else { &mut e.1 };
                *slot = Some(slot.map_or(n, |m: NodeId| m.min(n)));
            }
        }
        Ok(ends.into_iter().find_map(|(tx, e)| match e {
            (Some(a), Some(b)) => Some(format!(
                "CHECK FAILED atomicity {tx} committed at node {a}, aborted at node {b}"
            )),
            _ => None,
        }))
    }

    /// `Stats`: the counters, then per protocol that committed something, the messages
    /// and forced writes its nodes measured, per commit.
    pub(super) fn stats(&mut self) -> Result<(), Fatal> {
        self.barrier()?;
        let t = &self.txns;
        let mut lines = vec![format!("commits {}", t.commits)];
        for r in AbortReason::ALL {
            let n = t.aborts.get(r.as_str()).copied().unwrap_or(0);
            lines.push(format!("aborts {} {n}", r.as_str()));
        }
        let undecided = t.specs.len() - t.outcomes.len();
        lines.push(format!("undecided {undecided}"));
        lines.push(format!("in-doubt {}", t.in_doubt));
        lines.push(format!("retransmissions {}", t.retransmissions));
        if t.committed_by.iter().any(|&c| c > 0) {
            let ledger = &self.sys().ledger;
            let nodes: Vec<NodeId> = ledger.nodes().filter(|&n| ledger.runs(n)).collect();
            self.collect_costs(&nodes)?;
            for p in Protocol::ALL {
                let committed = self.txns.committed_by[p.index()];
                if committed == 0 {
                    continue;
                }
                let cost = self.costs[p.index()];
                let per = |x: u64| x as f64 / committed as f64;
                lines.push(format!(
                    "protocol {} committed={committed} messages={:.2} forced-writes={:.2}",
                    p.word(),
                    per(cost.messages),
                    per(cost.forced)
                ));
            }
        }
        self.push_done(lines.into_iter().map(Out::Line).collect(), false);
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
            for &(tx, outcome) in &r.decided {
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
            for &(tx, amount) in &r.dropped {
                if self.txns.dropped.insert(tx) {
                    outs.push(Out::Trace(TraceEvent::Drop { node, tx, amount }));
                }
            }
            for (to, m) in &r.sent {
                let msg = ChannelMsg::Commit(m.clone());
                outs.push(Out::Trace(TraceEvent::Send { from: node, to: *to, msg }));
            }
        }
        for &(tx, outcome) in &r.decided {
            self.record_outcome(tx, outcome);
        }
    }
}

impl Master {
    /// Adds what `nodes` measured since they last reported (each report is a delta, so
    /// that a node about to be killed gives its share first and a restarted one starts
    /// from zero).
    pub(super) fn collect_costs(&mut self, nodes: &[NodeId]) -> Result<(), Fatal> {
        for &n in nodes {
            let slot = self.push_await(Expect::Costs);
            self.sys().command(n, Control::Costs, slot)?;
        }
        self.barrier()
    }

    /// Sums one node's cost report into the run's.
    pub(super) fn add_costs(&mut self, costs: [crate::wire::Cost; 3]) {
        for (sum, c) in self.costs.iter_mut().zip(costs) {
            sum.messages += c.messages;
            sum.forced += c.forced;
        }
    }
}
