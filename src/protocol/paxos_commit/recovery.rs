//! Paxos Commit's recovery: its records replayed (promises, accepts and ballots come back
//! as they were forced), and what a restarted node does then. A child of `paxos_commit`:
//! the same machine, its other concern.

use super::{Cx, PaxosCommit};
use crate::ids::{NodeId, TxnId};
use crate::protocol::participant::{LegState, Participant};
use crate::protocol::record::PaxosRecord;
use crate::wire::{AbortReason, PaxosMsg, Protocol, TxOutcome, TxSpec};

impl PaxosCommit {
    /// A participant in doubt asks the others (a decided coordinator reports again).
    fn ask_after_restart(&self, part: &Participant, cx: &mut Cx) {
        let me = cx.me();
        for (&tx, px) in &self.txs {
            let in_doubt = part.state(tx) == Some(LegState::Prepared { commit_known: false });
            if in_doubt && px.decided.is_none() {
                let mut others: Vec<NodeId> = px
                    .acceptors
                    .iter()
                    .copied()
                    .chain([px.spec.coord])
                    .filter(|&n| n != me)
                    .collect();
                others.sort();
                others.dedup();
                for n in others {
                    cx.push_send(n, PaxosMsg::DecisionReq { tx });
                }
            }
            // A coordinator that logged its decision reports it again: the crash may
            // have come before the report, and the participants will ask for it.
            match px.decided {
                Some(true) if px.coordinating && !px.ended => {
                    cx.out.decided(tx, TxOutcome::Committed)
                }
                Some(false) if px.coordinating && !px.ended => {
                    let reason = px.no.unwrap_or(AbortReason::NodeDown);
                    cx.out.decided(tx, TxOutcome::Aborted(reason))
                }
                _ => {}
            }
        }
    }

    /// Replays a record of Paxos Commit's.
    pub(super) fn replay_paxos(&mut self, part: &mut Participant, rec: &PaxosRecord) {
        let me = part.id();
        match rec {
            PaxosRecord::Prepared { spec, acceptors } => {
                self.px(spec, *acceptors);
                part.prepare(spec, Protocol::Paxos);
            }
            PaxosRecord::Promise { spec, acceptors, bal } => {
                let px = self.px(spec, *acceptors);
                for p in &mut px.promised {
                    *p = (*p).max(Some(*bal));
                }
            }
            PaxosRecord::Accept { spec, acceptors, accept: a } => {
                let px = self.px(spec, *acceptors);
                if let Some(i) = px.inst(a.inst) {
                    px.promised[i] = px.promised[i].max(Some(a.bal));
                    px.accepted[i] = Some(*a);
                }
                px.coordinating |= spec.coord == me;
            }
            PaxosRecord::Ballot { spec, acceptors, bal } => {
                let px = self.px(spec, *acceptors);
                px.ballot = px.ballot.max(Some(*bal));
            }
            PaxosRecord::Decision { spec, acceptors, commit } => {
                let px = self.px(spec, *acceptors);
                px.decided = Some(*commit);
                px.coordinating |= spec.coord == me;
                match (part.state(spec.tx), commit) {
                    (Some(LegState::Prepared { .. }), false) => part.release(spec.tx),
                    (Some(LegState::Prepared { .. }), true) if spec.delta(me) > 0 => {
                        part.commit_known(spec.tx)
                    }
                    _ => {}
                }
            }
            PaxosRecord::End { tx } => {
                if let Some(px) = self.txs.get_mut(tx) {
                    px.ended = true;
                }
            }
        }
    }

    /// After a restart: a participant in doubt asks the others; a decided coordinator
    /// finishes; the rest waits for timeouts, which lead ballots.
    pub(super) fn recover(&mut self, part: &mut Participant, cx: &mut Cx) {
        self.ask_after_restart(part, cx);
        let me = cx.me();
        // Decided commits not applied before the crash (a payer, or a part with nothing
        // to be paid).
        let unapplied: Vec<TxSpec> = self
            .txs
            .values()
            .filter(|p| p.decided == Some(true) && p.spec.delta(me) <= 0)
            .filter(|p| matches!(part.state(p.spec.tx), Some(LegState::Prepared { .. })))
            .map(|p| p.spec.clone())
            .collect();
        for spec in unapplied {
            if part.commit_learnt(&mut cx.out, spec.tx) {
                cx.send(spec.coord, PaxosMsg::Ack { tx: spec.tx });
            }
        }
        // A coordinator's own part applied before the crash acks itself again: acks are
        // not logged, and no one else would send this one.
        let own: Vec<TxnId> = self
            .txs
            .iter()
            .filter(|(_, p)| p.coordinating && !p.ended && p.decided == Some(true))
            .filter(|(tx, p)| p.spec.is_participant(me) && part.applied(**tx))
            .map(|(tx, _)| *tx)
            .collect();
        for tx in own {
            self.on_ack(cx, me, tx);
        }
    }
}
