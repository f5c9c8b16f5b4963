//! Three-phase commit's termination protocol (Bernstein, Hadzilacos and Goodman, 1987,
//! ch. 7): what a node of a transfer does when its time is up. A coordinator that still
//! votes aborts; one that pre-commits takes a missing ack for a failed participant and
//! commits (the textbook rule); a participant elects the lowest participant it can
//! reach, which collects states and applies TR1-TR4, and a node in recovery only asks.
//! A child of `three_pc`: the same machine, its other concern.

use super::{Coord, Term, ThreePc};
use crate::ids::{NodeId, TxnId};
use crate::protocol::commit::Ctx;
use crate::protocol::legs::{Legs, PartState};
use crate::protocol::record::{ThreeRecord, TxRecord};
use crate::wire::{AbortReason, ThreeMsg, TxMsg, TxOutcome, TxSpec, TxState};
use std::collections::{BTreeMap, BTreeSet};

impl ThreePc {
    /// Time is up for `tx` here; `reach` are the nodes this one can reach.
    pub(in crate::protocol) fn on_timeout(
        &mut self,
        legs: &mut Legs,
        cx: &mut Ctx,
        tx: TxnId,
        reason: AbortReason,
        reach: &[NodeId],
    ) {
        match self.coords.get(&tx).cloned() {
            Some((spec, Coord::Voting(_))) => {
                self.coordinator_abort(legs, cx, spec, reason, None);
                return;
            }
            // The textbook rule: a missing ack is a failed participant.
            Some((spec, Coord::PreCommitting(_))) if !self.recovering.contains(&tx) => {
                self.coordinator_commit(legs, cx, spec);
                return;
            }
            Some((spec, Coord::Committed(acks))) => {
                cx.tell_decision(spec, &acks, true, TxMsg::ThreePc(ThreeMsg::DoCommit { tx }));
                return;
            }
            _ => {}
        }
        if let Some(t) = self.terms.get(&tx) {
            // A leader gives up waiting: the missing are failed.
            let (spec, pre) = (t.spec, t.pre_committing);
            if pre {
                self.terminate(legs, cx, spec, true, reason);
            } else {
                self.decide_termination(legs, cx, tx);
            }
            return;
        }
        let Some(spec) = legs.spec(tx).or_else(|| self.spec(tx)) else { return };
        if self.decided.contains_key(&tx)
            || matches!(legs.part(tx), Some(PartState::Committed | PartState::Aborted))
        {
            return;
        }
        let mut members = vec![spec.coord, spec.from, spec.to];
        members.sort();
        members.dedup();
        let all_reachable = members.iter().all(|m| *m == cx.me || reach.contains(m));
        // Election: the lowest participant this node can reach (itself included) leads.
        let candidates: Vec<NodeId> =
            spec.participants().into_iter().filter(|&p| p == cx.me || reach.contains(&p)).collect();
        let leads = candidates.iter().min() == Some(&cx.me);
        if !leads || (self.recovering.contains(&tx) && !all_reachable) {
            // Not the leader, or in recovery (which never decides alone): ask whoever
            // can be reached. One that knows the outcome says it; one that knows nothing
            // of the transfer never voted YES on it and aborts it; the leader, in doubt
            // too, times out and leads.
            let me = cx.me;
            for &m in members.iter().filter(|&&m| m != me && reach.contains(&m)) {
                cx.push_send(m, TxMsg::ThreePc(ThreeMsg::DecisionReq { tx }));
            }
            return;
        }
        let mut states = BTreeMap::new();
        states.insert(cx.me, self.leg_state(legs, tx));
        // Every node of the transfer it reaches is asked: the coordinator's state counts
        // too when it can be reached.
        let me = cx.me;
        let waiting: BTreeSet<NodeId> =
            members.into_iter().filter(|&m| m != me && reach.contains(&m)).collect();
        self.recovering.remove(&tx);
        for &p in &waiting {
            cx.push_send(p, TxMsg::ThreePc(ThreeMsg::StateReq { tx, all: all_reachable }));
        }
        let term = Term { spec, reason, states, waiting, pre_committing: false };
        let done = term.waiting.is_empty();
        self.terms.insert(tx, term);
        if done {
            self.decide_termination(legs, cx, tx);
        }
    }

    /// The leader has every state it will get: TR1–TR4.
    pub(super) fn decide_termination(&mut self, legs: &mut Legs, cx: &mut Ctx, tx: TxnId) {
        let Some(t) = self.terms.get_mut(&tx) else { return };
        let (spec, reason) = (t.spec, t.reason);
        let states: Vec<TxState> = t.states.values().copied().collect();
        if states.iter().any(|s| matches!(s, TxState::Aborted | TxState::None)) {
            self.terminate(legs, cx, spec, false, reason); // TR1 (a node that never voted aborts)
        } else if states.contains(&TxState::Committed) {
            self.terminate(legs, cx, spec, true, reason); // TR2
        } else if states.iter().all(|&s| s == TxState::Prepared) {
            self.terminate(legs, cx, spec, false, reason); // TR3
        } else {
            // TR4: pre-commit the uncertain (this node too), then commit.
            let uncertain: BTreeSet<NodeId> =
                t.states.iter().filter(|(_, &s)| s == TxState::Prepared).map(|(&n, _)| n).collect();
            t.pre_committing = true;
            t.waiting = uncertain.iter().copied().filter(|&n| n != cx.me).collect();
            if uncertain.contains(&cx.me) {
                cx.log(TxRecord::ThreePc(ThreeRecord::PreCommitted { spec }), true);
                self.pre.insert(tx);
            }
            let me = cx.me;
            for &n in uncertain.iter().filter(|&&n| n != me) {
                cx.push_send(n, TxMsg::ThreePc(ThreeMsg::PreCommit { tx }));
            }
            if self.terms.get(&tx).is_some_and(|t| t.waiting.is_empty()) {
                self.terminate(legs, cx, spec, true, reason);
            }
        }
    }

    /// The leader decides: logged (forced when commit), applied to its own leg, told to
    /// every other node of the transfer.
    pub(super) fn terminate(
        &mut self,
        legs: &mut Legs,
        cx: &mut Ctx,
        spec: TxSpec,
        commit: bool,
        reason: AbortReason,
    ) {
        let tx = spec.tx;
        self.terms.remove(&tx);
        if self.decided.contains_key(&tx) {
            return;
        }
        // Forced when it commits, or when a logged pre-commit would otherwise outlive it.
        let force = commit || self.pre.contains(&tx);
        cx.log(TxRecord::ThreePc(ThreeRecord::Decision { spec, commit }), force);
        self.learn(legs, spec, commit);
        cx.decided(tx, if commit { TxOutcome::Committed } else { TxOutcome::Aborted(reason) });
        if matches!(legs.part(tx), Some(PartState::Prepared { commit_known: false })) {
            if !commit {
                self.pre.remove(&tx);
                legs.abort_leg(cx, spec);
            } else if spec.from == cx.me {
                legs.commit_debit(cx, spec);
            } else {
                legs.commit_known(spec);
            }
        }
        let mut others = vec![spec.coord, spec.from, spec.to];
        others.sort();
        others.dedup();
        let me = cx.me;
        // Every node of the transfer is told, the unreachable too (it finds the message
        // when it is back). Telling only the operational sites, as some texts do, lets a
        // recovered node and a late PreCommit commit what this leader aborted, even
        // without partitions (the simulation found it).
        for n in others.into_iter().filter(|&n| n != me) {
            let msg = if commit && n == spec.to && spec.from == cx.me {
                continue; // the money, sent with the debit, tells the credit side
            } else if commit {
                TxMsg::ThreePc(ThreeMsg::DoCommit { tx })
            } else {
                TxMsg::Decide { tx, commit: false }
            };
            cx.push_send(n, msg);
        }
    }
}
