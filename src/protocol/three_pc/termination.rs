//! Three-phase commit's termination protocol (Bernstein, Hadzilacos and Goodman, 1987,
//! ch. 7): what a node of a transaction does when its time is up. A coordinator that
//! still votes aborts; one that pre-commits takes a missing ack for a failed participant
//! and commits (the textbook rule); a participant elects the lowest participant it can
//! reach, which collects states and applies TR1–TR4, and a node in recovery only asks.
//! A child of `three_pc`: the same machine, its other concern.

use super::{Coord, Cx, Term, ThreePc};
use crate::ids::{NodeId, TxnId};
use crate::protocol::effect::Force;
use crate::protocol::participant::{LegState, Participant};
use crate::protocol::record::ThreeRecord;
use crate::wire::{AbortReason, ThreeMsg, TxOutcome, TxSpec, TxState};
use std::collections::{BTreeMap, BTreeSet};

impl ThreePc {
    /// Time is up for `tx` here; `reach` are the nodes this one can reach.
    pub(super) fn time_out(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        tx: TxnId,
        reason: AbortReason,
        reach: &[NodeId],
    ) {
        if self.coordinator_times_out(part, cx, tx, reason) {
            return;
        }
        if let Some(t) = self.terms.get(&tx) {
            // A leader gives up waiting: the missing are failed.
            let (spec, pre) = (t.spec.clone(), t.pre_committing);
            if pre {
                self.terminate(part, cx, spec, true, reason);
            } else {
                self.decide_termination(part, cx, tx);
            }
            return;
        }
        let Some(spec) = part.spec(tx).or_else(|| self.spec(tx)).cloned() else { return };
        if self.decided.contains_key(&tx)
            || matches!(part.state(tx), Some(LegState::Committed | LegState::Aborted))
        {
            return;
        }
        self.elect(part, cx, spec, reason, reach);
    }

    /// A coordinator's timeout: still voting, it aborts; pre-committing, it takes a
    /// missing ack for a failed participant (the textbook rule); committed, it sends the
    /// commit again. Returns whether it was one.
    fn coordinator_times_out(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        tx: TxnId,
        reason: AbortReason,
    ) -> bool {
        match self.coords.get(&tx).cloned() {
            Some((spec, Coord::Voting(_))) => {
                self.coordinator_abort(part, cx, spec, reason, None);
            }
            Some((spec, Coord::PreCommitting(_))) if !self.recovering.contains(&tx) => {
                self.coordinator_commit(part, cx, spec);
            }
            Some((spec, Coord::Committed(acks))) => {
                let paid = part.applied(tx);
                cx.tell_decision(&spec, &acks, true, paid, ThreeMsg::DoCommit { tx });
            }
            _ => return false,
        }
        true
    }

    /// A participant in doubt: the lowest participant it can reach (itself included)
    /// leads and asks every node of the transaction it reaches; any other asks for the
    /// outcome.
    fn elect(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        spec: TxSpec,
        reason: AbortReason,
        reach: &[NodeId],
    ) {
        let (tx, me) = (spec.tx, cx.me());
        let members = spec.members();
        let all_reachable = members.iter().all(|m| *m == me || reach.contains(m));
        let leader = spec.participants().filter(|&p| p == me || reach.contains(&p)).min();
        if leader != Some(me) || (self.recovering.contains(&tx) && !all_reachable) {
            // Not the leader, or in recovery (which never decides alone): ask whoever
            // can be reached. One that knows the outcome says it; one that knows nothing
            // of the transaction never voted YES on it and aborts it; the leader, in
            // doubt too, times out and leads.
            for &m in members.iter().filter(|&&m| m != me && reach.contains(&m)) {
                cx.push_send(m, ThreeMsg::DecisionReq { tx });
            }
            return;
        }
        let mut states = BTreeMap::new();
        states.insert(me, self.leg_state(part, tx));
        // Every node of the transaction it reaches is asked: the coordinator's state
        // counts too when it can be reached.
        let waiting: BTreeSet<NodeId> =
            members.into_iter().filter(|&m| m != me && reach.contains(&m)).collect();
        self.recovering.remove(&tx);
        for &p in &waiting {
            cx.push_send(p, ThreeMsg::StateReq { tx, all: all_reachable });
        }
        let done = waiting.is_empty();
        self.terms.insert(tx, Term { spec, reason, states, waiting, pre_committing: false });
        if done {
            self.decide_termination(part, cx, tx);
        }
    }

    /// The leader has every state it will get: TR1–TR4.
    pub(super) fn decide_termination(&mut self, part: &mut Participant, cx: &mut Cx, tx: TxnId) {
        let Some(t) = self.terms.get_mut(&tx) else { return };
        let (spec, reason) = (t.spec.clone(), t.reason);
        let states: Vec<TxState> = t.states.values().copied().collect();
        if states.iter().any(|s| matches!(s, TxState::Aborted | TxState::None)) {
            self.terminate(part, cx, spec, false, reason); // TR1 (a node that never voted aborts)
        } else if states.contains(&TxState::Committed) {
            self.terminate(part, cx, spec, true, reason); // TR2
        } else if states.iter().all(|&s| s == TxState::Prepared) {
            self.terminate(part, cx, spec, false, reason); // TR3
        } else {
            // TR4: pre-commit the uncertain (this node too), then commit.
            let me = cx.me();
            let uncertain: BTreeSet<NodeId> =
                t.states.iter().filter(|(_, &s)| s == TxState::Prepared).map(|(&n, _)| n).collect();
            t.pre_committing = true;
            t.waiting = uncertain.iter().copied().filter(|&n| n != me).collect();
            if uncertain.contains(&me) {
                cx.out.log(ThreeRecord::PreCommitted { spec: spec.clone() }, Force::Now);
                self.pre.insert(tx);
            }
            for &n in uncertain.iter().filter(|&&n| n != me) {
                cx.push_send(n, ThreeMsg::PreCommit { tx });
            }
            if self.terms.get(&tx).is_some_and(|t| t.waiting.is_empty()) {
                self.terminate(part, cx, spec, true, reason);
            }
        }
    }

    /// The leader decides: logged (forced when commit), applied to its own part, told to
    /// every other node of the transaction.
    pub(super) fn terminate(
        &mut self,
        part: &mut Participant,
        cx: &mut Cx,
        spec: TxSpec,
        commit: bool,
        reason: AbortReason,
    ) {
        let (tx, me) = (spec.tx, cx.me());
        self.terms.remove(&tx);
        if self.decided.contains_key(&tx) {
            return;
        }
        // Forced when it commits, or when a logged pre-commit would otherwise outlive it.
        let force = if commit || self.pre.contains(&tx) { Force::Now } else { Force::Lazy };
        cx.out.log(ThreeRecord::Decision { spec: spec.clone(), commit }, force);
        self.learn(part, &spec, commit);
        cx.out.decided(tx, if commit { TxOutcome::Committed } else { TxOutcome::Aborted(reason) });
        if matches!(part.state(tx), Some(LegState::Prepared { commit_known: false })) {
            if !commit {
                self.pre.remove(&tx);
                part.abort(&mut cx.out, tx);
            } else if part.commit_learnt(&mut cx.out, tx) {
                cx.send(spec.coord, ThreeMsg::Ack { tx });
            }
        }
        // Every node of the transaction is told, the unreachable too (it finds the
        // message when it is back). Telling only the operational sites, as some texts do,
        // lets a recovered node and a late PreCommit commit what this leader aborted, even
        // without partitions (the simulation found it). A node this one pays learns the
        // commit from its money.
        for n in spec.members().into_iter().filter(|&n| n != me) {
            if commit && spec.pays_to(me, n) {
                continue;
            }
            let msg = if commit {
                ThreeMsg::DoCommit { tx }
            } else {
                ThreeMsg::Decide { tx, commit: false }
            };
            cx.push_send(n, msg);
        }
    }
}
