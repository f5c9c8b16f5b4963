//! `Check`, `Stats` and `Balances`: what the master asks the nodes and holds against the
//! money created and against each other (SPEC chapters 5, 8 and 12).

use super::book::verdict;
use super::expect::{Expect, Queried};
use super::fatal::Fatal;
use super::session::Session;
use super::slots::Out;
use crate::ids::{Amount, NodeId, TxnId};
use crate::output::{self, Verdict};
use crate::wire::{AccountState, Control, Money, ObserverRequest, Protocol, TxState};
use std::collections::BTreeMap;

impl Session {
    /// `Check`: no verdict while a node is down or paused; a transaction committed at one
    /// node and aborted at another is a split; else, in a script, every node's money
    /// (held included) plus the money in the channels (each payment once), held against
    /// all money created; in live mode, a snapshot's (`check_live`).
    pub fn check(&mut self) -> Result<(), Fatal> {
        self.barrier()?;
        let ledger = &self.sys().ledger;
        let absent = ledger.down().first().map(|&n| (n, false));
        let absent = absent.or_else(|| ledger.paused().first().map(|&n| (n, true)));
        if let Some((node, paused)) = absent {
            return self.verdict(Verdict::Unavailable { node, paused });
        }
        if let Some(split) = self.split()? {
            return self.verdict(split);
        }
        if self.is_live() {
            return self.check_live();
        }
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        let states = self.query(&nodes, None)?;
        let ledger = &self.sys().ledger;
        let mut total = ledger.money_in_channels();
        let mut why = Vec::new();
        for Queried { node: n, money, accounts, .. } in states {
            total = total.checked_add(money.balance).unwrap_or(Amount::MAX);
            let predicted = ledger.holdings().money(n);
            if predicted != money {
                why.push(format!(
                    "node {n} holds {} ({} held), the master's ledger says {} ({} held)",
                    money.balance, money.held, predicted.balance, predicted.held
                ));
            }
            why.extend(accounts_hold(n, money, &accounts));
        }
        let v = verdict(total, ledger.created(), why);
        self.verdict(v)
    }

    /// The `CHECK` line; a failure (money, or atomicity) makes the exit status 1.
    fn verdict(&mut self, v: Verdict) -> Result<(), Fatal> {
        let failed = matches!(v, Verdict::Failed(_) | Verdict::Split { .. });
        self.push_done(vec![Out::Line(output::check(&v))], failed);
        Ok(())
    }

    /// `Check` in live mode (every node up): a snapshot, begun at the first node,
    /// gathered whole, held against all money created.
    fn check_live(&mut self) -> Result<(), Fatal> {
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        let Some(&first) = nodes.first() else {
            return self.verdict(Verdict::Ok { total: Amount::ZERO });
        };
        let snapshot = self.sys().ledger.begin_live();
        let seq = self.sys().owed.alloc_seq(first);
        self.hush(snapshot)?;
        self.observe(ObserverRequest::Begin { snapshot, node: first, seq }, Expect::LiveBegun)?;
        let seqs = nodes.iter().map(|&n| (n, self.sys().owed.alloc_seq(n))).collect();
        let snapshots = vec![(snapshot, nodes)];
        let req = ObserverRequest::Collect { snapshots, seqs, wait: true };
        self.observe(req, Expect::LiveCheck)?;
        Ok(())
    }

    /// Every node's ended transactions held against each other's: the first transaction
    /// (by number) committed at one node and aborted at another, naming the lowest such
    /// nodes.
    fn split(&mut self) -> Result<Option<Verdict>, Fatal> {
        let nodes: Vec<NodeId> = self.sys().ledger.nodes().collect();
        self.answers.ended.clear();
        for &n in &nodes {
            self.ask(n, Control::Ended, Expect::Ended)?;
        }
        self.barrier()?;
        // Per transaction: the lowest node that committed it, and the lowest that aborted.
        let mut ends: BTreeMap<TxnId, (Option<NodeId>, Option<NodeId>)> = BTreeMap::new();
        for (n, list) in std::mem::take(&mut self.answers.ended) {
            for (tx, st) in list {
                let e = ends.entry(tx).or_default();
                let slot = if st == TxState::Committed { &mut e.0 } else { &mut e.1 };
                *slot = Some(slot.map_or(n, |m: NodeId| m.min(n)));
            }
        }
        Ok(ends.into_iter().find_map(|(tx, e)| match e {
            (Some(committed), Some(aborted)) => Some(Verdict::Split { tx, committed, aborted }),
            _ => None,
        }))
    }

    /// `Stats`: the counters, then per protocol that committed something, the messages
    /// and forced writes its nodes measured, per commit.
    pub fn stats(&mut self) -> Result<(), Fatal> {
        self.barrier()?;
        let committed_by = self.book.txns.counts.committed_by;
        let mut protocols = Vec::new();
        if committed_by.iter().any(|&c| c > 0) {
            let ledger = &self.sys().ledger;
            let nodes: Vec<NodeId> = ledger.nodes().filter(|&n| ledger.runs(n)).collect();
            self.collect_costs(&nodes)?;
            for p in Protocol::ALL.into_iter().filter(|p| committed_by[p.index()] > 0) {
                protocols.push((p, committed_by[p.index()], self.book.costs[p.index()]));
            }
        }
        let parts = self.book.txns.many_parts || self.sys().ledger.holdings().has_accounts();
        let txns = &self.book.txns;
        let lines = output::stats(&txns.counts, txns.undecided(), &protocols, parts);
        self.push_done(lines.into_iter().map(Out::Line).collect(), false);
        Ok(())
    }

    /// Adds what `nodes` measured since they last reported (each report is a delta, so
    /// that a node about to be killed gives its share first and a restarted one starts
    /// from zero).
    pub fn collect_costs(&mut self, nodes: &[NodeId]) -> Result<(), Fatal> {
        for &n in nodes {
            self.ask(n, Control::Costs, Expect::Costs)?;
        }
        self.barrier()
    }

    /// `Balances`: every node's money (and what transactions hold of it), or why it
    /// cannot say.
    pub fn balances(&mut self) -> Result<(), Fatal> {
        let ledger = &self.sys().ledger;
        let all: Vec<NodeId> = ledger.nodes().collect();
        let up: Vec<NodeId> = all.iter().copied().filter(|&n| ledger.runs(n)).collect();
        let got = self.query(&up, None)?;
        let ledger = &self.sys().ledger;
        let mut outs: Vec<Out> = all
            .into_iter()
            .map(|n| match got.iter().find(|q| q.node == n) {
                Some(q) => Out::Line(output::balance(n, q.money.balance, q.money.held)),
                None => Out::Line(output::absent(n, ledger.is_paused(n))),
            })
            .collect();
        for (name, n) in ledger.holdings().accounts() {
            let here = got.iter().find(|q| q.node == n);
            let out = match here.and_then(|q| q.accounts.iter().find(|a| &a.name == name)) {
                Some(a) => Out::Line(output::account_balance(name, a.balance, a.held)),
                None if here.is_some() => {
                    return Err(Fatal::Bug(format!("node {n} does not hold account {name}")))
                }
                None => Out::Line(output::account_absent(name, ledger.is_paused(n))),
            };
            outs.push(out);
        }
        self.push_done(outs, false);
        Ok(())
    }
}

/// What is wrong with a node's named accounts, as it reported them: an account holding
/// more than it owns, or accounts owning more than the node.
fn accounts_hold(node: NodeId, money: Money, accounts: &[AccountState]) -> Vec<String> {
    let mut why: Vec<String> = accounts
        .iter()
        .filter(|a| a.held > a.balance)
        .map(|a| format!("account {} holds {} of its {}", a.name, a.held, a.balance))
        .collect();
    let named: u128 = accounts.iter().map(|a| u128::from(a.balance.0)).sum();
    if named > u128::from(money.balance.0) {
        why.push(format!("node {node}'s accounts own {named}, more than its {}", money.balance));
    }
    why
}
