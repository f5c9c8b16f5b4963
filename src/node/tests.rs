//! Unit tests of `mod.rs`, kept apart so the module reads in one sitting.
use super::*;
use crate::wire::{Protocol, TxSpec};

/// Runs `spec` between branches 1 and 2 to its end, delivering every message at once;
/// returns each step's effects with the node that took it.
fn steps(spec: TxSpec) -> Vec<(NodeId, Vec<Effect>)> {
    let (a, b) = (NodeId(1), NodeId(2));
    let mut branches = [Branch::new(a, Amount(100)), Branch::new(b, Amount(0))];
    let mut setup = Vec::new();
    branches[0].on_setup(&[b], &[], &mut setup);
    branches[1].on_setup(&[a], &[], &mut setup);
    let mut out = Vec::new();
    branches[(spec.coord.0 - 1) as usize].on_start(&spec, Protocol::TwoPc, &mut out);
    let mut steps = vec![(spec.coord, out)];
    let mut i = 0;
    while i < steps.len() {
        let (at, effects) = steps[i].clone();
        for e in effects {
            if let Effect::Send { to, msg } = e {
                let mut out = Vec::new();
                branches[(to.0 - 1) as usize].on_deliver(at, msg, &mut out);
                steps.push((to, out));
            }
        }
        i += 1;
    }
    steps
}

// The one step whose sync may wait: the credit side's commit of a transfer its debit
// side coordinates. Not its YES, not the debit side's steps, and not when the credit
// side coordinates (its own ack waits for nothing).
#[test]
fn only_a_credit_sides_commit_for_a_debit_coordinator_may_hold_its_ack() {
    let (a, b) = (NodeId(1), NodeId(2));
    let spec = TxSpec::transfer(TxnId(1), a, b, Amount(30), a);
    let lazy: Vec<(NodeId, Option<NodeId>)> =
        steps(spec.clone()).iter().map(|(at, out)| (*at, lazy_ack(out))).collect();
    // Transfer, Prepare at 2, Vote at 1 (decision, Credit), Credit at 2, Ack at 1.
    assert_eq!(lazy, vec![(a, None), (b, None), (a, None), (b, Some(a)), (a, None)]);

    let via_credit = TxSpec { coord: b, ..spec };
    let all = steps(via_credit);
    assert!(all.len() > 3, "the transfer ran: {all:?}");
    assert!(all.iter().all(|(_, out)| lazy_ack(out).is_none()), "{all:?}");
}
