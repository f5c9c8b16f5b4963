//! The transaction commands (SPEC chapters 5, 8 and 11): `Transfer` under each protocol,
//! the delivery loop that drives transactions to their end with logical timeouts, and
//! `TxStatus`. The faults that leave transactions waiting are `faults`; live mode's
//! transfers are `live`'s.

use super::expect::Expect;
use super::fatal::Fatal;
use super::session::Session;
use super::slots::Out;
use crate::ids::{NodeId, TxnId};
use crate::output::{self, NodeTx, Overall};
use crate::wire::{AbortReason, Control, Protocol, TxOutcome, TxSpec, TxState};
use rustc_hash::FxHashMap as HashMap;

/// Why a Paxos Commit transaction or load is refused on fewer than three nodes.
pub const PAXOS_NEEDS_THREE: &str =
    "paxos needs three nodes (its three acceptors); this system has fewer";

/// How many times one node may time out on one transaction while one command drives it:
/// two-phase commit needs one (a participant asks, a coordinator aborts or resends);
/// three-phase commit's elections and Paxos Commit's ballots may need another round.
fn timeouts_allowed(protocol: Protocol) -> u32 {
    match protocol {
        Protocol::TwoPc => 1,
        Protocol::ThreePc | Protocol::Paxos => 3,
    }
}

impl Session {
    /// `Transfer`, in a script: the coordinator starts it; then, unless `nowait`, the
    /// heads of the channels among its nodes are delivered in the order they were
    /// enqueued, exactly as `Receive` would, until it is decided and none of its messages
    /// is left in them. Run node to node when nothing can step in (`can_drive`).
    pub fn transfer(
        &mut self,
        spec: TxSpec,
        nowait: bool,
        protocol: Protocol,
    ) -> Result<(), Fatal> {
        let tx = spec.tx;
        if !self.sys().ledger.runs(spec.coord) {
            // Nobody can coordinate it: it aborts before it starts.
            self.book.txns.record_outcome(tx, TxOutcome::Aborted(AbortReason::NodeDown));
        } else if !nowait && protocol == Protocol::TwoPc && self.can_drive(&spec) {
            // Nothing earlier may still wait to run at the other participant: it would
            // run after the transaction's messages, not before as in stepwise delivery.
            self.barrier()?;
            let run = Control::Transfer { spec: spec.clone(), drive: true, protocol };
            let slot = self.ask(spec.coord, run, Expect::TxRun { spec })?;
            self.wait_slot(slot)?;
        } else {
            let start = Control::Transfer { spec: spec.clone(), drive: false, protocol };
            let slot = self.ask(spec.coord, start, Expect::TxStep { spec, nowait })?;
            self.wait_slot(slot)?;
            if nowait {
                return Ok(());
            }
            self.drive(&[tx])?;
        }
        let outcome = self.book.txns.outcomes.get(&tx).copied();
        if outcome.is_none() {
            self.book.txns.counts.in_doubt += 1;
        }
        let word = self.book.txns.word(tx);
        self.push_done(vec![Out::Line(output::transfer(word, tx, outcome))], false);
        Ok(())
    }

    /// Whether `spec` can run node to node, its messages delivered as they arrive, with
    /// the same result and the same state after it as the master's step-by-step delivery:
    /// two nodes (the coordinator is one of them), both running, the channels between
    /// them empty (so their heads are the transaction's own messages, in the same order),
    /// and nothing that could step in: no fault has happened (no crash point armed, no
    /// loss or hold) and no trace asks for each delivery.
    fn can_drive(&self, spec: &TxSpec) -> bool {
        let ledger = &self.sys.as_ref().expect("a Transfer runs in a system").ledger;
        let parts: Vec<NodeId> = spec.participants().collect();
        let &[a, b] = parts.as_slice() else { return false };
        // Node accounts only: the ledger follows what a Send may take, which a named
        // account's change would not move.
        let own_only = spec.parts.iter().all(|p| p.changes.is_empty());
        own_only
            && !self.book.txns.faults
            && !self.tracing()
            && [a, b].contains(&spec.coord)
            && ledger.runs(a)
            && ledger.runs(b)
            && ledger.is_empty((a, b))
            && ledger.is_empty((b, a))
    }

    /// Delivers what transactions `txs` need, as `Receive` would: the heads of the
    /// channels among their nodes, oldest first, into nodes that run and are not cut off,
    /// until each is decided and none of its messages is left there. When nothing more
    /// can be delivered, the first node that still waits on one of them times out
    /// ([`Session::time_out_next`]). Each node times out a bounded number of times per
    /// transaction ([`timeouts_allowed`]), so this ends.
    pub fn drive(&mut self, txs: &[TxnId]) -> Result<(), Fatal> {
        let mut timed_out: HashMap<(TxnId, NodeId), u32> = HashMap::default();
        for step in 0.. {
            if step > 1_000_000 {
                return Err(Fatal::Bug(format!("{txs:?} did not end after {step} deliveries")));
            }
            let mut chans = Vec::new();
            for tx in txs {
                let c = self.book.txns.channels(*tx);
                if !self.book.txns.outcomes.contains_key(tx) || self.sys().ledger.carries(&c, *tx) {
                    chans.extend(c);
                }
            }
            if let Some(c) = self.sys().ledger.oldest_head(&chans) {
                self.deliver(c, false)?;
                continue;
            }
            // Without a fault (no crash, loss or hold), a decided transaction whose
            // messages have all been delivered leaves nobody waiting: skip asking.
            if !self.book.txns.faults && txs.iter().all(|t| self.book.txns.outcomes.contains_key(t))
            {
                return Ok(());
            }
            if !self.time_out_next(txs, &mut timed_out)? {
                return Ok(()); // nothing waits, or only on nodes that are down
            }
        }
        Ok(())
    }

    /// Nothing is deliverable: the first node that still waits on one of `txs` (as it
    /// says; coordinators first, then by transaction and id) times out at once, logical
    /// time, knowing which nodes it can reach: a voting coordinator aborts (`node-down`
    /// if one of its nodes is down, paused or cut off from it, else `timeout`), a
    /// committed one resends its decision, a participant asks, three-phase commit's
    /// participants elect a leader, Paxos Commit's lead a ballot. False if none may.
    fn time_out_next(
        &mut self,
        txs: &[TxnId],
        timed_out: &mut HashMap<(TxnId, NodeId), u32>,
    ) -> Result<bool, Fatal> {
        let mut nodes: Vec<NodeId> = txs.iter().flat_map(|&tx| self.book.txns.nodes(tx)).collect();
        nodes.retain(|&n| self.sys.as_ref().is_some_and(|s| s.ledger.runs(n)));
        nodes.sort();
        nodes.dedup();
        self.query(&nodes, None)?;
        let txns = &self.book.txns;
        let mut next: Vec<(bool, TxnId, NodeId)> = std::mem::take(&mut self.answers.waiting)
            .into_iter()
            .filter(|(t, n)| {
                let left = timeouts_allowed(txns.protocol_of(*t));
                txs.contains(t) && timed_out.get(&(*t, *n)).copied().unwrap_or(0) < left
            })
            .map(|(t, n)| (txns.specs[&t].coord != n, t, n))
            .collect();
        next.sort();
        let Some(&(_, tx, node)) = next.first() else { return Ok(false) };
        let spec = self.book.txns.specs[&tx].clone();
        *timed_out.entry((tx, node)).or_default() += 1;
        let reach = self.sys().ledger.reach(node);
        // Waiting on a node it cannot reach, or on a channel that holds its messages.
        let lost = self.book.txns.nodes(tx).iter().any(|&n| n != node && !reach.contains(&n));
        let reason = if lost { AbortReason::NodeDown } else { AbortReason::Timeout };
        let timeout = Control::Timeout { tx, reason, reach };
        let slot = self.ask(node, timeout, Expect::TxStep { spec, nowait: false })?;
        self.wait_slot(slot)?;
        Ok(true)
    }

    /// The transactions not finished yet (undecided, or with messages in the channels
    /// among their nodes) that have a node in `nodes`, by number; `all_protocols`: two-
    /// phase commit's too (chapter 5 drives those only in `Transfer` and `Restart`).
    pub fn unfinished_with(&self, nodes: &[NodeId], all_protocols: bool) -> Vec<TxnId> {
        let ledger = &self.sys.as_ref().expect("a system runs").ledger;
        let txns = &self.book.txns;
        let mut txs: Vec<TxnId> = txns
            .specs
            .keys()
            .copied()
            .filter(|&tx| all_protocols || txns.protocol_of(tx) != Protocol::TwoPc)
            .filter(|&tx| txns.nodes(tx).iter().any(|n| nodes.contains(n)))
            .filter(|&tx| {
                !txns.outcomes.contains_key(&tx)
                    || ledger.carries(&txns.channels(tx), tx)
                    || txns.faults
            })
            .collect();
        txs.sort();
        txs
    }

    /// `TxStatus T<n>`: how it stands, and each of its nodes' state.
    pub fn tx_status(&mut self, tx: TxnId) -> Result<(), Fatal> {
        let nodes = self.book.txns.nodes(tx);
        let ledger = &self.sys().ledger;
        let up: Vec<NodeId> = nodes.iter().copied().filter(|&n| ledger.runs(n)).collect();
        let states = self.query(&up, Some(tx))?;
        let ledger = &self.sys().ledger;
        let each: Vec<(NodeId, NodeTx)> = nodes
            .iter()
            .map(|&n| match states.iter().find(|q| q.node == n).and_then(|q| q.tx) {
                Some(st) => (n, NodeTx::State(st)),
                None if ledger.is_paused(n) => (n, NodeTx::Paused),
                None => (n, NodeTx::Down),
            })
            .collect();
        let overall = match self.overall(tx) {
            Overall::Pending if tx.0 <= self.book.txns.resumed => resumed_outcome(&each),
            overall => overall,
        };
        self.push_done(vec![Out::Line(output::tx_status(tx, overall, &each))], false);
        Ok(())
    }

    /// How a transaction stands: its outcome, else IN-DOUBT while its coordinator cannot
    /// answer, else PENDING.
    pub fn overall(&self, tx: TxnId) -> Overall {
        let coord = self.book.txns.specs[&tx].coord;
        match self.book.txns.outcomes.get(&tx) {
            Some(&o) => Overall::Decided(o),
            None if !self.sys.as_ref().is_some_and(|s| s.ledger.runs(coord)) => Overall::InDoubt,
            None => Overall::Pending,
        }
    }
}

/// The outcome of a transaction that ended before `--resume`, from its nodes' states: it
/// committed if one of them says so (a commit is never taken back), else it aborted.
fn resumed_outcome(each: &[(NodeId, NodeTx)]) -> Overall {
    let committed = each.iter().any(|(_, st)| *st == NodeTx::State(TxState::Committed));
    Overall::Decided(match committed {
        true => TxOutcome::Committed,
        false => TxOutcome::Aborted(AbortReason::Timeout),
    })
}
