//! Paxos Commit's acceptor: promises and accepts, each forced before it is answered, per
//! instance (one per participant). A child of `paxos_commit`: the same machine's
//! acceptor role, the rule that makes it safe.

use super::{Cx, Px};
use crate::ids::NodeId;
use crate::protocol::effect::Force;
use crate::protocol::record::PaxosRecord;
use crate::wire::{Accept, Ballot, CrashPoint, PaxosMsg};

/// This node, if it is one of `px`'s acceptors, accepts `a` unless it promised a higher
/// ballot in that instance: forced, and counted by itself as a learner. Returns whether
/// it accepted.
pub(super) fn accept(px: &mut Px, cx: &mut Cx, a: Accept) -> bool {
    let Some(i) = px.inst(a.inst) else { return false };
    if px.promised[i].is_some_and(|p| a.bal < p) || !px.acceptors.contains(&cx.me()) {
        return false;
    }
    px.promised[i] = Some(a.bal);
    px.accepted[i] = Some(a);
    let (spec, acceptors) = (px.spec.clone(), px.acceptors);
    cx.out.log(PaxosRecord::Accept { spec, acceptors, accept: a }, Force::Now);
    px.heard.entry((i, a.bal, a.prepared)).or_default().insert(cx.me());
    true
}

/// A leader's (or a vote passed on by the coordinator) phase 2a: accepted, answered.
pub(super) fn on_phase2a(px: &mut Px, cx: &mut Cx, from: NodeId, a: Accept) {
    if accept(px, cx, a) {
        let tx = px.spec.tx;
        let reply = PaxosMsg::Phase2b { tx, accepted: [Some(a), None], vote: None, no: None };
        cx.send(from, reply);
        cx.out.point(CrashPoint::AfterAccept);
    }
}

/// A leader with a higher ballot than any promised here, in every instance: promised
/// (forced), answered with the highest value accepted in each instance.
pub(super) fn on_phase1a(px: &mut Px, cx: &mut Cx, from: NodeId, bal: Ballot) {
    if px.promised.iter().all(|p| p.is_none_or(|p| bal > p)) {
        px.promised.iter_mut().for_each(|p| *p = Some(bal));
        let (spec, acceptors) = (px.spec.clone(), px.acceptors);
        let tx = spec.tx;
        cx.out.log(PaxosRecord::Promise { spec, acceptors, bal }, Force::Now);
        let last = px.accepted.clone();
        cx.send(from, PaxosMsg::Phase1b { tx, bal, last });
    } else if let Some(commit) = px.decided {
        // Refused, and the outcome is known here: the leader needs no ballot.
        cx.send(from, PaxosMsg::Decide { tx: px.spec.tx, commit });
    } else {
        // Refused: the leader learns the ballot it must pass (a promise of no value).
        let top = px.promised.iter().copied().flatten().max().expect("refused by a promise");
        cx.send(from, PaxosMsg::Phase1b { tx: px.spec.tx, bal: top, last: Vec::new() });
    }
}

/// The coordinator got participant vote `v` at ballot 0 with fewer than two acceptors
/// having it (the voter is no acceptor, past the third part): it passes the vote on to as
/// many more acceptors, in order, as a choice needs. Their answers come back to it.
pub(super) fn pass_on(px: &Px, cx: &mut Cx, v: Accept) {
    let Some(i) = px.inst(v.inst) else { return };
    if !px.coordinating || v.bal.n != 0 {
        return;
    }
    let have = px.heard.get(&(i, v.bal, v.prepared)).cloned().unwrap_or_default();
    let need = 2usize.saturating_sub(have.len());
    let me = cx.me();
    let more = px.acceptors.iter().filter(|a| !have.contains(a) && **a != me && **a != v.inst);
    for &acc in more.take(need) {
        cx.push_send(acc, PaxosMsg::Phase2a { tx: px.spec.tx, accept: v });
    }
}
