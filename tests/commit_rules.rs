//! Two-phase commit's rules, one test each, driving the pure machine by hand and asserting
//! the exact effects (raft-rs `test_raft_paper.rs` style): what is sent, to whom, in what
//! order, and nothing more. Each test names the rule it checks.

use bank::command::{parse_line, Command};
use bank::ids::{Amount, NodeId, SnapshotId, TxnId};
use bank::protocol::two_pc::{
    AbortReason, CoordState, CrashPoint, Outcome, PartState, TxEffect, TxMsg, TxNode, TxRecord,
    TxSpec,
};
use bank::protocol::{Branch, Effect};
use bank::wire::ChannelMsg;

fn n(i: u32) -> NodeId {
    NodeId(i)
}

fn spec(tx: u64, from: u32, to: u32, amount: u64, coord: u32) -> TxSpec {
    TxSpec { tx: TxnId(tx), from: n(from), to: n(to), amount: Amount(amount), coord: n(coord) }
}

fn sends(out: &[TxEffect]) -> Vec<(NodeId, TxMsg)> {
    out.iter()
        .filter_map(|e| if let TxEffect::Send { to, msg } = e { Some((*to, *msg)) } else { None })
        .collect()
}

fn decided(out: &[TxEffect]) -> Option<Outcome> {
    out.iter().find_map(|e| {
        if let TxEffect::Decided { outcome, .. } = e {
            Some(*outcome)
        } else {
            None
        }
    })
}

/// A node that has voted YES on `s` (as a participant asked by its coordinator).
fn prepared(id: u32, balance: u64, s: TxSpec) -> TxNode {
    let mut p = TxNode::new(n(id), Amount(balance));
    let mut out = Vec::new();
    p.on_message(s.coord, TxMsg::Prepare { spec: s }, &mut out);
    assert_eq!(sends(&out), vec![(s.coord, TxMsg::Vote { tx: s.tx, no: None })]);
    p
}

// Crash points have distinct names, and the command language names each of them.
#[test]
fn every_crash_point_has_its_own_name_in_the_command_language() {
    let mut names: Vec<&str> = CrashPoint::ALL.iter().map(|p| p.name()).collect();
    for p in CrashPoint::ALL {
        let line = format!("CrashAt 2 {}", p.name());
        assert_eq!(
            parse_line(1, &line).unwrap(),
            Some(Command::CrashAt { node: n(2), point: p }),
            "{line}"
        );
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CrashPoint::ALL.len());
    assert_eq!(CrashPoint::MidCommit.name(), "mid-commit");
}

// The coordinator's decision: none while voting, commit once every YES is in, the
// reason of an abort.
#[test]
fn the_decision_is_known_only_once_taken() {
    let s = spec(1, 1, 2, 30, 3);
    let mut c = TxNode::new(n(3), Amount(0));
    let mut out = Vec::new();
    c.on_start(s, &mut out);
    assert_eq!(c.decision(s.tx), None);
    assert!(!c.finished(s.tx));
    c.on_message(n(1), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    assert_eq!(c.decision(s.tx), None, "one YES of two");
    c.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    assert_eq!(c.decision(s.tx), Some(Outcome::Committed));
    assert!(!c.finished(s.tx), "acks are missing");
    c.on_message(n(1), TxMsg::Ack { tx: s.tx }, &mut out);
    assert!(!c.finished(s.tx));
    c.on_message(n(2), TxMsg::Ack { tx: s.tx }, &mut out);
    assert!(c.finished(s.tx));
    assert_eq!(c.decision(s.tx), Some(Outcome::Committed));
    let s2 = spec(2, 1, 2, 30, 3);
    c.on_start(s2, &mut out);
    c.on_message(
        n(1),
        TxMsg::Vote { tx: s2.tx, no: Some(AbortReason::InsufficientFunds) },
        &mut out,
    );
    assert_eq!(c.decision(s2.tx), Some(Outcome::Aborted(AbortReason::InsufficientFunds)));
    assert!(c.finished(s2.tx));
    assert_eq!(c.decision(TxnId(9)), None);
}

// TxStatus's words at each role, from start to end.
#[test]
fn status_follows_each_role() {
    let s = spec(1, 1, 2, 30, 3);
    let mut c = TxNode::new(n(3), Amount(0));
    let (mut a, mut b) = (TxNode::new(n(1), Amount(100)), TxNode::new(n(2), Amount(0)));
    assert_eq!(c.status(s.tx), "NONE");
    let mut out = Vec::new();
    c.on_start(s, &mut out);
    assert_eq!(c.status(s.tx), "NONE");
    a.on_message(n(3), TxMsg::Prepare { spec: s }, &mut out);
    b.on_message(n(3), TxMsg::Prepare { spec: s }, &mut out);
    assert_eq!((a.status(s.tx), b.status(s.tx)), ("PREPARED", "PREPARED"));
    c.on_message(n(1), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    c.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    assert_eq!(c.status(s.tx), "COMMITTED");
    a.on_message(n(3), TxMsg::Decide { tx: s.tx, commit: true }, &mut out);
    assert_eq!(a.status(s.tx), "COMMITTED");
    b.on_message(n(3), TxMsg::Decide { tx: s.tx, commit: true }, &mut out);
    assert_eq!(b.status(s.tx), "PREPARED", "committed, waiting for the money");
    b.on_message(n(1), TxMsg::Credit { tx: s.tx, amount: Amount(30) }, &mut out);
    assert_eq!(b.status(s.tx), "COMMITTED");
    let s2 = spec(2, 1, 2, 30, 3);
    c.on_start(s2, &mut out);
    a.on_message(n(3), TxMsg::Prepare { spec: s2 }, &mut out);
    c.on_message(n(2), TxMsg::Vote { tx: s2.tx, no: Some(AbortReason::Timeout) }, &mut out);
    a.on_message(n(3), TxMsg::Decide { tx: s2.tx, commit: false }, &mut out);
    assert_eq!((a.status(s2.tx), c.status(s2.tx)), ("ABORTED", "ABORTED"));
    assert_eq!(a.held(), Amount(0), "the abort released the hold");
}

// Commit, third-party coordinator: the decision is forced before anything leaves, and
// the mid-commit point sits between the two decisions sent.
#[test]
fn the_decision_is_forced_first_and_mid_commit_sits_between_the_two_sends() {
    let s = spec(1, 1, 2, 30, 3);
    let mut c = TxNode::new(n(3), Amount(0));
    let mut out = Vec::new();
    c.on_start(s, &mut out);
    c.on_message(n(1), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    out.clear();
    c.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    let decide = TxMsg::Decide { tx: s.tx, commit: true };
    assert_eq!(
        out,
        vec![
            TxEffect::Point(CrashPoint::BeforeDecision),
            TxEffect::Log { rec: TxRecord::Decision { spec: s, commit: true }, force: true },
            TxEffect::Point(CrashPoint::AfterDecision),
            TxEffect::Decided { tx: s.tx, outcome: Outcome::Committed },
            TxEffect::Send { to: n(1), msg: decide },
            TxEffect::Point(CrashPoint::MidCommit),
            TxEffect::Send { to: n(2), msg: decide },
        ]
    );
    // The debit side coordinating sends one message (the money): no mid-commit point.
    let s = spec(2, 1, 2, 30, 1);
    let mut a = TxNode::new(n(1), Amount(100));
    out.clear();
    a.on_start(s, &mut out);
    out.clear();
    a.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    assert!(!out.contains(&TxEffect::Point(CrashPoint::MidCommit)), "{out:?}");
    assert_eq!(sends(&out), vec![(n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) })]);
}

// A participant votes: crash point before, forced Prepared, the vote, crash point after.
#[test]
fn a_yes_is_forced_before_it_is_sent() {
    let s = spec(1, 1, 2, 30, 3);
    let mut a = TxNode::new(n(1), Amount(100));
    let mut out = Vec::new();
    a.on_message(n(3), TxMsg::Prepare { spec: s }, &mut out);
    assert_eq!(
        out,
        vec![
            TxEffect::Point(CrashPoint::BeforeVote),
            TxEffect::Log { rec: TxRecord::Prepared { spec: s }, force: true },
            TxEffect::Send { to: n(3), msg: TxMsg::Vote { tx: s.tx, no: None } },
            TxEffect::Point(CrashPoint::AfterVote),
        ]
    );
    assert_eq!((a.held(), a.available()), (Amount(30), Amount(70)));
    // A duplicated Prepare repeats the vote and logs nothing.
    out.clear();
    a.on_message(n(3), TxMsg::Prepare { spec: s }, &mut out);
    assert_eq!(out, vec![TxEffect::Send { to: n(3), msg: TxMsg::Vote { tx: s.tx, no: None } }]);
    assert_eq!(a.held(), Amount(30), "held once");
}

// Live mode's relaying: a credit side that knows the commit and lacks the money tells
// the debit side the decision on a timeout (scripts ask the coordinator instead).
#[test]
fn relaying_asks_the_debit_side_for_the_money() {
    let s = spec(1, 1, 2, 30, 3);
    for relay in [false, true] {
        let mut b = prepared(2, 0, s);
        b.set_relay(relay);
        let mut out = Vec::new();
        b.on_message(n(3), TxMsg::Decide { tx: s.tx, commit: true }, &mut out);
        assert!(sends(&out).is_empty(), "the credit side waits for the money");
        out.clear();
        b.on_timeout(s.tx, AbortReason::Timeout, &mut out);
        let want = if relay {
            vec![(n(1), TxMsg::Decide { tx: s.tx, commit: true })]
        } else {
            vec![(n(3), TxMsg::DecisionReq { tx: s.tx })]
        };
        assert_eq!(sends(&out), want, "relay={relay}");
    }
}

// A committed debit side told the decision again: with relaying it pays again (a crash
// may have lost the money; the credit side applies it once); without, it only acks.
#[test]
fn a_debit_side_told_again_pays_again_only_when_relaying() {
    let s = spec(1, 1, 2, 30, 3);
    for relay in [false, true] {
        let mut a = prepared(1, 100, s);
        a.set_relay(relay);
        let mut out = Vec::new();
        a.on_message(n(3), TxMsg::Decide { tx: s.tx, commit: true }, &mut out);
        assert_eq!(
            sends(&out),
            vec![
                (n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) }),
                (n(3), TxMsg::Ack { tx: s.tx })
            ]
        );
        out.clear();
        a.on_message(n(3), TxMsg::Decide { tx: s.tx, commit: true }, &mut out);
        let mut want = vec![(n(3), TxMsg::Ack { tx: s.tx })];
        if relay {
            want.insert(0, (n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) }));
        }
        assert_eq!(sends(&out), want, "relay={relay}");
        assert_eq!(a.balance(), Amount(70), "debited once");
    }
}

// What a node owes and is owed across a restart (live mode's resync): a credit side
// lists exactly the transfers from that peer it voted on and was not paid for; a debit
// side pays again exactly those it committed.
#[test]
fn owed_money_is_exactly_the_unpaid_credits() {
    let mut b = prepared(2, 0, spec(1, 1, 2, 10, 1));
    let mut out = Vec::new();
    b.on_message(n(3), TxMsg::Prepare { spec: spec(2, 3, 2, 5, 3) }, &mut out);
    b.on_message(n(1), TxMsg::Prepare { spec: spec(3, 2, 1, 7, 1) }, &mut out);
    b.on_message(n(1), TxMsg::Prepare { spec: spec(4, 1, 2, 9, 1) }, &mut out);
    b.on_message(n(1), TxMsg::Credit { tx: TxnId(4), amount: Amount(9) }, &mut out);
    assert_eq!(b.owed_by(n(1)), vec![TxnId(1)], "not T2 (other peer), T3 (debit), T4 (paid)");
    assert_eq!(b.owed_by(n(3)), vec![TxnId(2)]);
    assert_eq!(b.credit_again(TxnId(4)), None, "a credit side has nothing to pay");
    let s = spec(5, 1, 2, 30, 3);
    let mut a = prepared(1, 100, s);
    assert_eq!(a.credit_again(s.tx), None, "not committed yet");
    a.on_message(n(3), TxMsg::Decide { tx: s.tx, commit: true }, &mut out);
    assert_eq!(a.credit_again(s.tx), Some((n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) })));
    assert_eq!(a.credit_again(TxnId(99)), None);
}

// A committed coordinator whose acks are missing sends the decision again only to those
// that have not acked; as the debit side it sends the money instead of the decision.
#[test]
fn a_timed_out_commit_is_resent_only_to_who_has_not_acked() {
    let s = spec(1, 1, 2, 30, 3);
    let mut c = TxNode::new(n(3), Amount(0));
    let mut out = Vec::new();
    c.on_start(s, &mut out);
    c.on_message(n(1), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    c.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    c.on_message(n(1), TxMsg::Ack { tx: s.tx }, &mut out);
    out.clear();
    c.on_timeout(s.tx, AbortReason::Timeout, &mut out);
    assert_eq!(sends(&out), vec![(n(2), TxMsg::Decide { tx: s.tx, commit: true })]);
    let s = spec(2, 1, 2, 30, 1);
    let mut a = TxNode::new(n(1), Amount(100));
    out.clear();
    a.on_start(s, &mut out);
    a.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    out.clear();
    a.on_timeout(s.tx, AbortReason::Timeout, &mut out);
    assert_eq!(sends(&out), vec![(n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) })]);
    assert!(matches!(a.coord(s.tx), Some(CoordState::Committed(_))));
    assert_eq!(a.waiting(), vec![s.tx]);
    out.clear();
    a.on_message(n(2), TxMsg::Ack { tx: s.tx }, &mut out);
    assert_eq!(a.coord(s.tx), Some(&CoordState::Ended));
    assert!(a.waiting().is_empty() && a.finished(s.tx));
    out.clear();
    a.on_timeout(s.tx, AbortReason::Timeout, &mut out);
    assert!(out.is_empty(), "an ended transfer waits on nothing: {out:?}");
}

// A voting coordinator that times out aborts with the reason given, and tells both.
#[test]
fn a_voting_coordinator_times_out_into_an_abort() {
    let s = spec(1, 1, 2, 30, 3);
    let mut c = TxNode::new(n(3), Amount(0));
    let mut out = Vec::new();
    c.on_start(s, &mut out);
    out.clear();
    c.on_timeout(s.tx, AbortReason::NodeDown, &mut out);
    assert_eq!(decided(&out), Some(Outcome::Aborted(AbortReason::NodeDown)));
    let abort = TxMsg::Decide { tx: s.tx, commit: false };
    assert_eq!(sends(&out), vec![(n(1), abort), (n(2), abort)]);
    assert!(out.contains(&TxEffect::Log {
        rec: TxRecord::Decision { spec: s, commit: false },
        force: false
    }));
}

// A coordinator that is also a participant never asks itself: in doubt means asking a
// remote coordinator only.
#[test]
fn a_coordinator_participant_does_not_ask_itself() {
    let s = spec(1, 1, 2, 30, 2);
    let mut b = TxNode::new(n(2), Amount(0));
    let mut out = Vec::new();
    b.on_start(s, &mut out);
    assert_eq!(sends(&out), vec![(n(1), TxMsg::Prepare { spec: s })]);
    assert_eq!(b.in_doubt(), vec![s.tx]);
    out.clear();
    b.on_timeout(s.tx, AbortReason::Timeout, &mut out);
    assert!(!sends(&out)
        .iter()
        .any(|(to, m)| *to == n(2) || matches!(m, TxMsg::DecisionReq { .. })));
    assert_eq!(decided(&out), Some(Outcome::Aborted(AbortReason::Timeout)));
}

// Waiting: who is waited on, and with whom (what a restarted peer must be sent again).
#[test]
fn waiting_lists_exactly_the_unfinished_transfers_of_each_peer() {
    let mut a = TxNode::new(n(1), Amount(100));
    let mut out = Vec::new();
    a.on_start(spec(1, 1, 2, 10, 1), &mut out);
    a.on_message(n(3), TxMsg::Prepare { spec: spec(2, 1, 4, 10, 3) }, &mut out);
    a.on_start(spec(3, 1, 5, 500, 1), &mut out); // short funds: aborted at once
    assert_eq!(a.waiting(), vec![TxnId(1), TxnId(2)]);
    assert_eq!(a.in_doubt(), vec![TxnId(1), TxnId(2)]);
    assert_eq!(a.waiting_with(n(2)), vec![TxnId(1)]);
    assert_eq!(a.waiting_with(n(3)), vec![TxnId(2)], "the coordinator");
    assert_eq!(a.waiting_with(n(4)), vec![TxnId(2)], "the other participant");
    assert!(a.waiting_with(n(5)).is_empty());
    assert_eq!(a.part(TxnId(2)), Some(PartState::Prepared { commit_known: false }));
}

// Recovery asks the remote coordinator of every transfer in doubt, and only it.
#[test]
fn recovery_in_doubt_asks_the_coordinator() {
    let s = spec(1, 1, 2, 30, 3);
    let log = [TxRecord::Opened { balance: Amount(0) }, TxRecord::Prepared { spec: s }];
    let mut out = Vec::new();
    let b = TxNode::recover(n(2), &log, &mut out);
    assert_eq!(out, vec![TxEffect::Send { to: n(3), msg: TxMsg::DecisionReq { tx: s.tx } }]);
    assert_eq!(b.in_doubt(), vec![s.tx]);
    // Coordinator and participant both: its own Prepared asks nobody.
    let s = spec(2, 1, 2, 30, 2);
    let log = [TxRecord::Opened { balance: Amount(0) }, TxRecord::Prepared { spec: s }];
    out.clear();
    TxNode::recover(n(2), &log, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // A decided or applied transfer asks nothing either.
    let s = spec(3, 1, 2, 30, 3);
    let log = [
        TxRecord::Opened { balance: Amount(100) },
        TxRecord::Prepared { spec: s },
        TxRecord::Committed { spec: s },
    ];
    out.clear();
    let a = TxNode::recover(n(1), &log, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!((a.balance(), a.held()), (Amount(70), Amount(0)));
}

// A coordinator that is the credit side recovers a commit: it asks for nothing it has
// and ends only when the money has come (its own leg is not applied by the decision).
#[test]
fn a_recovered_credit_coordinator_ends_only_after_the_money() {
    let s = spec(1, 1, 2, 30, 2);
    let log = [
        TxRecord::Opened { balance: Amount(5) },
        TxRecord::Prepared { spec: s },
        TxRecord::Decision { spec: s, commit: true },
    ];
    let mut out = Vec::new();
    let mut b = TxNode::recover(n(2), &log, &mut out);
    assert_eq!(
        out,
        vec![
            TxEffect::Decided { tx: s.tx, outcome: Outcome::Committed },
            TxEffect::Send { to: n(1), msg: TxMsg::Decide { tx: s.tx, commit: true } },
        ]
    );
    out.clear();
    b.on_message(n(1), TxMsg::Ack { tx: s.tx }, &mut out);
    assert!(matches!(b.coord(s.tx), Some(CoordState::Committed(_))), "its own leg is not in");
    b.on_message(n(1), TxMsg::Credit { tx: s.tx, amount: Amount(30) }, &mut out);
    assert_eq!(b.coord(s.tx), Some(&CoordState::Ended));
    assert_eq!(b.balance(), Amount(35));
}

// Recovery of a debit coordinator's commit: debited once, the money sent again, and it
// waits for the credit side's ack.
#[test]
fn a_recovered_debit_coordinator_pays_again_and_waits_for_the_ack() {
    let s = spec(1, 1, 2, 30, 1);
    let log = [
        TxRecord::Opened { balance: Amount(100) },
        TxRecord::Sent { to: n(2), amount: Amount(5) },
        TxRecord::Deposited { from: n(2), amount: Amount(2) },
        TxRecord::Decision { spec: s, commit: true },
    ];
    let mut out = Vec::new();
    let a = TxNode::recover(n(1), &log, &mut out);
    assert_eq!((a.balance(), a.held()), (Amount(67), Amount(0)));
    assert_eq!(
        sends(&out),
        vec![(n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) })],
        "its own ack is internal"
    );
    assert_eq!(a.waiting(), vec![s.tx]);
    let log2 = [log[0], log[1], log[2], log[3], TxRecord::End { tx: s.tx }];
    out.clear();
    let a = TxNode::recover(n(1), &log2, &mut out);
    assert!(out.is_empty() && a.waiting().is_empty(), "{out:?}");
}

// Recovery of an abort: a hold is released by the coordinator's abort record or the
// participant's; nothing is sent.
#[test]
fn a_recovered_abort_releases_the_hold() {
    let s = spec(1, 1, 2, 30, 3);
    for last in [TxRecord::Aborted { tx: s.tx }, TxRecord::Decision { spec: s, commit: false }] {
        let log = [TxRecord::Opened { balance: Amount(100) }, TxRecord::Prepared { spec: s }, last];
        let mut out = Vec::new();
        let a = TxNode::recover(n(1), &log, &mut out);
        assert_eq!((a.balance(), a.held()), (Amount(100), Amount(0)), "{last:?}");
        assert!(a.in_doubt().is_empty());
    }
}

// A credit is money arriving: recorded in a running snapshot's channel state like a
// Transfer, once (a duplicated credit changes nothing).
#[test]
fn a_credit_is_recorded_in_a_snapshot_once() {
    let s = spec(1, 1, 2, 30, 1);
    let mut b = Branch::new(n(2), Amount(0));
    let mut out = Vec::new();
    b.on_setup(&[n(1)], &[], &mut out);
    b.on_deliver(n(1), ChannelMsg::Tx(TxMsg::Prepare { spec: s }), &mut out);
    b.on_begin_snapshot(SnapshotId(0), &mut out);
    let credit = ChannelMsg::Tx(TxMsg::Credit { tx: s.tx, amount: Amount(30) });
    b.on_deliver(n(1), credit, &mut out);
    b.on_deliver(n(1), credit, &mut out);
    assert_eq!(b.snapshots().get(SnapshotId(0)).unwrap().channel_sum(n(1)), Amount(30));
    assert_eq!(b.balance(), Amount(30));
}

// The branch times out its transfers as the machine does: in doubt, it asks.
#[test]
fn a_branch_in_doubt_asks_its_coordinator_on_a_timeout() {
    let s = spec(1, 1, 2, 30, 3);
    let mut b = Branch::new(n(2), Amount(0));
    let mut out = Vec::new();
    b.on_setup(&[n(1), n(3)], &[], &mut out);
    b.on_deliver(n(3), ChannelMsg::Tx(TxMsg::Prepare { spec: s }), &mut out);
    out.clear();
    b.on_timeout(s.tx, AbortReason::Timeout, &mut out);
    assert_eq!(
        out,
        vec![Effect::Send { to: n(3), msg: ChannelMsg::Tx(TxMsg::DecisionReq { tx: s.tx }) }]
    );
}
