//! Three-phase commit's recovery: its records replayed, and what a restarted node does
//! then (finish what it decided, ask about what it did not, never decide alone). A child
//! of `three_pc`: the same machine, its other concern.

use super::{Coord, Cx, ThreePc};
use crate::protocol::participant::{LegState, Participant};
use crate::protocol::record::ThreeRecord;
use crate::wire::{Protocol, ThreeMsg, TxOutcome, TxSpec};
use std::collections::BTreeSet;

impl ThreePc {
    /// Replays a record of three-phase commit's.
    pub(super) fn replay_three(&mut self, part: &mut Participant, rec: &ThreeRecord) {
        let me = part.id();
        match rec {
            ThreeRecord::Prepared { spec } => part.prepare(spec, Protocol::ThreePc),
            ThreeRecord::PreCommitting { spec } => {
                let mut acked = BTreeSet::new();
                if spec.is_participant(me) {
                    part.prepare(spec, Protocol::ThreePc);
                    self.pre.insert(spec.tx);
                    acked.insert(me);
                }
                self.coords.insert(spec.tx, (spec.clone(), Coord::PreCommitting(acked)));
            }
            ThreeRecord::PreCommitted { spec } => {
                self.pre.insert(spec.tx);
            }
            ThreeRecord::Decision { spec, commit } => self.replay_decision(part, spec, *commit),
            ThreeRecord::End { tx } => {
                if let Some(c) = self.coords.get_mut(tx) {
                    c.1 = Coord::Ended;
                }
            }
            ThreeRecord::Refused { tx } => {
                self.refused.insert(*tx);
            }
        }
    }

    /// A replayed decision: a coordinator's commit is its own part's commit too.
    fn replay_decision(&mut self, part: &mut Participant, spec: &TxSpec, commit: bool) {
        let me = part.id();
        self.decided.insert(spec.tx, (spec.clone(), commit));
        if spec.coord == me {
            let st = if commit { Coord::Committed(BTreeSet::new()) } else { Coord::Aborted };
            self.coords.insert(spec.tx, (spec.clone(), st));
            if commit && spec.is_participant(me) {
                part.replay_commit(spec, Protocol::ThreePc);
            }
        }
        match (part.state(spec.tx), commit) {
            (Some(LegState::Prepared { .. }), false) => part.release(spec.tx),
            (Some(LegState::Prepared { .. }), true) => part.commit_known(spec.tx),
            _ => {}
        }
    }

    /// After a restart: finish what was decided; ask about what was not (never decide
    /// alone); a pre-committing coordinator without a decision asks too.
    pub(super) fn recover(&mut self, part: &mut Participant, cx: &mut Cx) {
        let me = cx.me();
        for tx in part.in_doubt() {
            if part.protocol(tx) != Some(Protocol::ThreePc) || self.decided.contains_key(&tx) {
                continue;
            }
            let spec = part.spec(tx).expect("a leg has its spec").clone();
            self.recovering.insert(tx);
            for n in spec.members().into_iter().filter(|&n| n != me) {
                cx.push_send(n, ThreeMsg::DecisionReq { tx });
            }
        }
        let coords: Vec<(TxSpec, Coord)> = self.coords.values().cloned().collect();
        for (spec, st) in coords {
            let tx = spec.tx;
            match st {
                Coord::PreCommitting(_) => {
                    self.recovering.insert(tx);
                    for p in spec.participants().filter(|&p| p != me) {
                        cx.push_send(p, ThreeMsg::DecisionReq { tx });
                    }
                }
                Coord::Committed(_) => {
                    cx.out.decided(tx, TxOutcome::Committed);
                    let (paid, none) = (part.applied(tx), BTreeSet::new());
                    cx.tell_decision(&spec, &none, true, paid, ThreeMsg::DoCommit { tx });
                    if part.applied(tx) {
                        self.on_ack(part, cx, me, tx);
                    }
                }
                _ => {}
            }
        }
    }
}
