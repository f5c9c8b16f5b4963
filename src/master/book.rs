//! What the master knows of the running system beyond its channels (the ledger's): the
//! transactions with their outcomes and counters, the snapshots gathered and pending,
//! and the costs the nodes measured. Filled from the nodes' reports; read by the
//! commands that print it (`TxStatus`, `Stats`, `PrintSnapshot`) and by those that drive
//! transactions. Pure bookkeeping: no I/O.

use crate::ids::{Amount, NodeId, SnapshotId, TxnId};
use crate::master::ChannelId;
use crate::output::{TxWord, Verdict};
use crate::wire::{Cost, GlobalSnapshot, LoadStats, Protocol, TxOutcome, TxSpec};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeSet;

/// The counters `Stats` prints.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Commits, loads' included.
    pub commits: u64,
    /// Commits per protocol (`Protocol::ALL` order).
    pub committed_by: [u64; 3],
    /// The participants of those commits, summed per protocol.
    pub parts_by: [u64; 3],
    /// Aborts per reason (`AbortReason::ALL` order).
    pub aborts: [u64; 3],
    /// Transactions that ended their command IN-DOUBT.
    pub in_doubt: u64,
    /// Messages resent to restarted nodes.
    pub retransmissions: u64,
    /// How long the loads' committed transactions took.
    pub latency: crate::wire::Latency,
}

/// The transactions of the running system, as their nodes reported them.
#[derive(Default)]
pub struct Txns {
    /// The last `T<n>` given.
    pub next: u64,
    pub specs: HashMap<TxnId, TxSpec>,
    /// The protocol of each transaction that does not run by two-phase commit, with its
    /// Paxos Commit acceptors.
    pub runs_by: HashMap<TxnId, (Protocol, [NodeId; 3])>,
    pub outcomes: HashMap<TxnId, TxOutcome>,
    pub counts: Counts,
    /// A Crash, CrashAt, Lose, Hold, Pause or Partition has happened in this system:
    /// transactions may wait on something other than a message in a channel.
    pub faults: bool,
    /// The protocol of Transfers that name none (`Protocol`; 2pc at `StartMaster`).
    pub protocol: Protocol,
    /// A three-phase commit has run: it may have split, and the money its credit
    /// carried is then gone (SPEC chapter 8).
    pub three_pc_ran: bool,
    /// Transactions whose credit a node dropped (traced once).
    pub dropped: HashSet<TxnId>,
    /// Nodes of driven transfers that answered at the decision and may still be
    /// finishing them.
    pub unsettled: BTreeSet<NodeId>,
    /// The transactions a `Transaction` command started (printed with that word).
    pub transactions: HashSet<TxnId>,
    /// A `Transaction` (or a load of transactions) ran: `Stats` says how many parts the
    /// commits had (SPEC chapter 11).
    pub many_parts: bool,
    /// Transactions up to this number ran before `--resume`: every one ended before the
    /// first line, and `TxStatus` reads its outcome from its nodes.
    pub resumed: u64,
}

impl Txns {
    /// The next transaction number.
    pub fn next_id(&mut self) -> TxnId {
        self.next += 1;
        TxnId(self.next)
    }

    /// A new transaction, run by `protocol` with these acceptors.
    pub fn add(&mut self, spec: &TxSpec, protocol: Protocol, acceptors: [NodeId; 3]) {
        self.specs.insert(spec.tx, spec.clone());
        self.three_pc_ran |= protocol == Protocol::ThreePc;
        if protocol != Protocol::TwoPc {
            self.runs_by.insert(spec.tx, (protocol, acceptors));
        }
    }

    /// The word `tx`'s lines begin with.
    pub fn word(&self, tx: TxnId) -> TxWord {
        if self.transactions.contains(&tx) {
            TxWord::Transaction
        } else {
            TxWord::Transfer
        }
    }

    /// The protocol `tx` runs by.
    pub fn protocol_of(&self, tx: TxnId) -> Protocol {
        self.runs_by.get(&tx).map_or(Protocol::TwoPc, |r| r.0)
    }

    /// A transaction's nodes (participants, coordinator, and Paxos Commit's acceptors),
    /// by id.
    pub fn nodes(&self, tx: TxnId) -> Vec<NodeId> {
        let mut nodes = self.specs[&tx].members();
        if let Some((Protocol::Paxos, acceptors)) = self.runs_by.get(&tx) {
            nodes.extend(acceptors);
        }
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// The channels among a transaction's nodes.
    pub fn channels(&self, tx: TxnId) -> Vec<ChannelId> {
        let nodes = self.nodes(tx);
        nodes
            .iter()
            .flat_map(|&a| nodes.iter().filter(move |&&b| b != a).map(move |&b| (a, b)))
            .collect()
    }

    /// Every transaction, by number.
    pub fn all(&self) -> Vec<TxnId> {
        let mut all: Vec<TxnId> = self.specs.keys().copied().collect();
        all.sort();
        all
    }

    /// The first report of `tx`'s outcome stands: a later, contrary one is 3PC's split,
    /// which `Check` reports; `TxStatus` and the counters keep what was printed first.
    /// A load's transaction is the load's summary's to count.
    pub fn record_outcome(&mut self, tx: TxnId, outcome: TxOutcome) {
        if !self.specs.contains_key(&tx) || self.outcomes.contains_key(&tx) {
            return;
        }
        self.outcomes.insert(tx, outcome);
        match outcome {
            TxOutcome::Committed => {
                let p = self.protocol_of(tx).index();
                self.counts.commits += 1;
                self.counts.committed_by[p] += 1;
                self.counts.parts_by[p] += self.specs[&tx].parts.len() as u64;
            }
            TxOutcome::Aborted(r) => self.counts.aborts[r.index()] += 1,
        }
    }

    /// A load's share counted in: its commits and aborts.
    pub fn count_load(&mut self, s: &LoadStats, protocol: Protocol) {
        self.counts.commits += s.committed;
        self.counts.committed_by[protocol.index()] += s.committed;
        self.counts.parts_by[protocol.index()] += s.parts;
        self.counts.latency.add(&s.latency);
        for (a, n) in self.counts.aborts.iter_mut().zip(s.aborted) {
            *a += n;
        }
    }

    /// Transactions started and not decided.
    pub fn undecided(&self) -> usize {
        // Those from before a `--resume` all ended then (their outcome is at their nodes).
        let resumed = self.specs.keys().filter(|t| t.0 <= self.resumed).count();
        let decided = self.outcomes.keys().filter(|t| t.0 > self.resumed).count();
        self.specs.len() - resumed - decided
    }
}

/// The snapshots as the master knows them.
#[derive(Default)]
pub struct Snaps {
    /// What the last successful `CollectState` gathered.
    pub gathered: Vec<GlobalSnapshot>,
    /// Snapshots begun since the last successful `CollectState`.
    pub since_collect: Vec<SnapshotId>,
    /// Snapshots that can never complete (a member crashed after recording), to report.
    pub lost: Vec<(SnapshotId, NodeId)>,
}

impl Snaps {
    /// `node` died (or restarted) while snapshots begun since the last `CollectState`
    /// were recorded there: `lost` of them can never be gathered.
    pub fn lose(&mut self, node: NodeId, lost: &[SnapshotId]) {
        let gone: Vec<SnapshotId> =
            self.since_collect.iter().copied().filter(|k| lost.contains(k)).collect();
        self.since_collect.retain(|k| !gone.contains(k));
        self.lost.extend(gone.into_iter().map(|k| (k, node)));
    }
}

/// Everything the master keeps of a system beyond its channels.
#[derive(Default)]
pub struct Book {
    pub txns: Txns,
    pub snaps: Snaps,
    /// The sum of the nodes' cost reports, per protocol.
    pub costs: [Cost; 3],
    /// Loads started in this run (each numbers its transactions apart).
    pub loads: u32,
}

impl Book {
    /// Sums one node's cost report into the run's (each report is a delta).
    pub fn add_costs(&mut self, costs: [Cost; 3]) {
        for (sum, c) in self.costs.iter_mut().zip(costs) {
            sum.messages += c.messages;
            sum.forced += c.forced;
        }
    }
}

/// `Check`'s verdict on money: `total` counted against all money `created`, and `why`
/// else it failed (a node's money not what the ledger says).
pub fn verdict(total: Amount, created: Amount, mut why: Vec<String>) -> Verdict {
    if total != created {
        why.insert(0, format!("total={total} created={created}"));
    }
    if why.is_empty() {
        Verdict::Ok { total }
    } else {
        Verdict::Failed(why)
    }
}
