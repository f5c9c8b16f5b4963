//! Two-phase commit's rules, one test each, driving the pure machine by hand and asserting
//! the exact effects (raft-rs `test_raft_paper.rs` style): what is sent, to whom, in what
//! order, and nothing more. Each test names the rule it checks.

use bank::command::{parse_line, Command};
use bank::ids::{Amount, NodeId, SnapshotId, TxnId};
use bank::protocol::commit::{Facts, Machine};
use bank::protocol::participant::LegState;
use bank::protocol::record::{LegRecord, TwoPcRecord};
use bank::protocol::two_pc::{CoordState, TwoPc};
use bank::protocol::{Branch, Effect, Force, Record};
use bank::wire::{
    AbortReason, ChannelMsg, CommitMsg, CrashPoint, Protocol, TwoPcMsg, TxOutcome, TxSpec,
};

/// One node running two-phase commit.
type Node = Machine<TwoPc>;

/// Every node of the system (two-phase commit's failure detector needs none; a timeout
/// is given them all as reachable).
const NODES: [NodeId; 5] = [NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5)];

fn n(i: u32) -> NodeId {
    NodeId(i)
}

fn spec(tx: u64, from: u32, to: u32, amount: u64, coord: u32) -> TxSpec {
    TxSpec::transfer(TxnId(tx), n(from), n(to), Amount(amount), n(coord))
}

/// A two-phase-commit message, as it travels.
fn two(m: TwoPcMsg) -> CommitMsg {
    CommitMsg::TwoPc(m)
}

fn prepare(s: &TxSpec) -> CommitMsg {
    two(TwoPcMsg::Prepare { spec: s.clone() })
}

fn vote(tx: TxnId, no: Option<AbortReason>) -> CommitMsg {
    two(TwoPcMsg::Vote { tx, no })
}

fn decide(tx: TxnId, commit: bool) -> CommitMsg {
    two(TwoPcMsg::Decide { tx, commit })
}

fn ack(tx: TxnId) -> CommitMsg {
    two(TwoPcMsg::Ack { tx })
}

fn decision_req(tx: TxnId) -> CommitMsg {
    two(TwoPcMsg::DecisionReq { tx })
}

fn credit(tx: TxnId, amount: u64) -> CommitMsg {
    CommitMsg::Credit { tx, amount: Amount(amount) }
}

/// The effect of sending `msg` to `to`.
fn send(to: NodeId, msg: CommitMsg) -> Effect {
    Effect::Send { to, msg: ChannelMsg::Commit(msg) }
}

/// The messages sent, in order.
fn sends(out: &[Effect]) -> Vec<(NodeId, CommitMsg)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send { to, msg: ChannelMsg::Commit(m) } => Some((*to, m.clone())),
            Effect::Send { msg, .. } => panic!("a commit machine sent {msg:?}"),
            _ => None,
        })
        .collect()
}

fn decided(out: &[Effect]) -> Option<TxOutcome> {
    out.iter().find_map(
        |e| {
            if let Effect::Decided { outcome, .. } = e {
                Some(*outcome)
            } else {
                None
            }
        },
    )
}

/// `node` coordinates `s`.
fn start(node: &mut Node, s: &TxSpec, out: &mut Vec<Effect>) {
    node.start(s, &NODES, out)
}

/// Time is up for `tx` at `node`, every node reachable.
fn timeout(node: &mut Node, tx: TxnId, reason: AbortReason, out: &mut Vec<Effect>) {
    node.on_timeout(tx, reason, &NODES, out)
}

/// `TxStatus`'s word for `tx` at `node`.
fn status(node: &Node, tx: TxnId) -> &'static str {
    node.state(tx).word()
}

fn balance(node: &Node) -> Amount {
    node.part.accounts().total()
}

fn held(node: &Node) -> Amount {
    node.part.accounts().held()
}

/// A node that has voted YES on `s` (as a participant asked by its coordinator).
fn prepared(id: u32, balance: u64, s: &TxSpec) -> Node {
    let mut p = Node::new(n(id), Amount(balance));
    let mut out = Vec::new();
    p.on_message(s.coord, prepare(s), &mut out);
    assert_eq!(sends(&out), vec![(s.coord, vote(s.tx, None))]);
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
    let mut c = Node::new(n(3), Amount(0));
    let mut out = Vec::new();
    start(&mut c, &s, &mut out);
    assert_eq!(c.proto.decision(s.tx), None);
    assert!(!c.proto.finished(s.tx));
    c.on_message(n(1), vote(s.tx, None), &mut out);
    assert_eq!(c.proto.decision(s.tx), None, "one YES of two");
    c.on_message(n(2), vote(s.tx, None), &mut out);
    assert_eq!(c.proto.decision(s.tx), Some(TxOutcome::Committed));
    assert!(!c.proto.finished(s.tx), "acks are missing");
    c.on_message(n(1), ack(s.tx), &mut out);
    assert!(!c.proto.finished(s.tx));
    c.on_message(n(2), ack(s.tx), &mut out);
    assert!(c.proto.finished(s.tx));
    assert_eq!(c.proto.decision(s.tx), Some(TxOutcome::Committed));
    let s2 = spec(2, 1, 2, 30, 3);
    start(&mut c, &s2, &mut out);
    c.on_message(n(1), vote(s2.tx, Some(AbortReason::InsufficientFunds)), &mut out);
    assert_eq!(c.proto.decision(s2.tx), Some(TxOutcome::Aborted(AbortReason::InsufficientFunds)));
    assert!(c.proto.finished(s2.tx));
    assert_eq!(c.proto.decision(TxnId(9)), None);
}

// TxStatus's words at each role, from start to end.
#[test]
fn status_follows_each_role() {
    let s = spec(1, 1, 2, 30, 3);
    let mut c = Node::new(n(3), Amount(0));
    let (mut a, mut b) = (Node::new(n(1), Amount(100)), Node::new(n(2), Amount(0)));
    assert_eq!(status(&c, s.tx), "NONE");
    let mut out = Vec::new();
    start(&mut c, &s, &mut out);
    assert_eq!(status(&c, s.tx), "NONE");
    a.on_message(n(3), prepare(&s), &mut out);
    b.on_message(n(3), prepare(&s), &mut out);
    assert_eq!((status(&a, s.tx), status(&b, s.tx)), ("PREPARED", "PREPARED"));
    c.on_message(n(1), vote(s.tx, None), &mut out);
    c.on_message(n(2), vote(s.tx, None), &mut out);
    assert_eq!(status(&c, s.tx), "COMMITTED");
    a.on_message(n(3), decide(s.tx, true), &mut out);
    assert_eq!(status(&a, s.tx), "COMMITTED");
    b.on_message(n(3), decide(s.tx, true), &mut out);
    assert_eq!(status(&b, s.tx), "PREPARED", "committed, waiting for the money");
    b.on_message(n(1), credit(s.tx, 30), &mut out);
    assert_eq!(status(&b, s.tx), "COMMITTED");
    let s2 = spec(2, 1, 2, 30, 3);
    start(&mut c, &s2, &mut out);
    a.on_message(n(3), prepare(&s2), &mut out);
    c.on_message(n(2), vote(s2.tx, Some(AbortReason::Timeout)), &mut out);
    a.on_message(n(3), decide(s2.tx, false), &mut out);
    assert_eq!((status(&a, s2.tx), status(&c, s2.tx)), ("ABORTED", "ABORTED"));
    assert_eq!(held(&a), Amount(0), "the abort released the hold");
}

// Commit, third-party coordinator: the decision is forced before anything leaves, and
// the mid-commit point sits between the two decisions sent.
#[test]
fn the_decision_is_forced_first_and_mid_commit_sits_between_the_two_sends() {
    let s = spec(1, 1, 2, 30, 3);
    let mut c = Node::new(n(3), Amount(0));
    let mut out = Vec::new();
    start(&mut c, &s, &mut out);
    c.on_message(n(1), vote(s.tx, None), &mut out);
    out.clear();
    c.on_message(n(2), vote(s.tx, None), &mut out);
    let rec = Record::TwoPc(TwoPcRecord::Decision { spec: s.clone(), commit: true });
    assert_eq!(
        out,
        vec![
            Effect::Point(CrashPoint::BeforeDecision),
            Effect::Log { rec, force: Force::Now },
            Effect::Point(CrashPoint::AfterDecision),
            Effect::Decided { tx: s.tx, outcome: TxOutcome::Committed },
            send(n(1), decide(s.tx, true)),
            Effect::Point(CrashPoint::MidCommit),
            send(n(2), decide(s.tx, true)),
        ]
    );
    // The debit side coordinating sends one message (the money): no mid-commit point.
    let s = spec(2, 1, 2, 30, 1);
    let mut a = Node::new(n(1), Amount(100));
    out.clear();
    start(&mut a, &s, &mut out);
    out.clear();
    a.on_message(n(2), vote(s.tx, None), &mut out);
    assert!(!out.contains(&Effect::Point(CrashPoint::MidCommit)), "{out:?}");
    assert_eq!(sends(&out), vec![(n(2), credit(s.tx, 30))]);
}

// A participant votes: crash point before, forced Prepared, the vote, crash point after.
#[test]
fn a_yes_is_forced_before_it_is_sent() {
    let s = spec(1, 1, 2, 30, 3);
    let mut a = Node::new(n(1), Amount(100));
    let mut out = Vec::new();
    a.on_message(n(3), prepare(&s), &mut out);
    assert_eq!(
        out,
        vec![
            Effect::Point(CrashPoint::BeforeVote),
            Effect::Log {
                rec: Record::TwoPc(TwoPcRecord::Prepared { spec: s.clone() }),
                force: Force::Now
            },
            send(n(3), vote(s.tx, None)),
            Effect::Point(CrashPoint::AfterVote),
        ]
    );
    assert_eq!((held(&a), a.part.accounts().own().available()), (Amount(30), Amount(70)));
    // A duplicated Prepare repeats the vote and logs nothing.
    out.clear();
    a.on_message(n(3), prepare(&s), &mut out);
    assert_eq!(out, vec![send(n(3), vote(s.tx, None))]);
    assert_eq!(held(&a), Amount(30), "held once");
}

// Live mode's relaying: a credit side that knows the commit and lacks the money tells
// the debit side the decision on a timeout (scripts ask the coordinator instead).
#[test]
fn relaying_asks_the_debit_side_for_the_money() {
    let s = spec(1, 1, 2, 30, 3);
    for relay in [false, true] {
        let mut b = prepared(2, 0, &s);
        b.relay = relay;
        let mut out = Vec::new();
        b.on_message(n(3), decide(s.tx, true), &mut out);
        assert!(sends(&out).is_empty(), "the credit side waits for the money");
        out.clear();
        timeout(&mut b, s.tx, AbortReason::Timeout, &mut out);
        let want =
            if relay { vec![(n(1), decide(s.tx, true))] } else { vec![(n(3), decision_req(s.tx))] };
        assert_eq!(sends(&out), want, "relay={relay}");
    }
}

// A committed debit side told the decision again: with relaying it pays again (a crash
// may have lost the money; the credit side applies it once); without, it only acks.
#[test]
fn a_debit_side_told_again_pays_again_only_when_relaying() {
    let s = spec(1, 1, 2, 30, 3);
    for relay in [false, true] {
        let mut a = prepared(1, 100, &s);
        a.relay = relay;
        let mut out = Vec::new();
        a.on_message(n(3), decide(s.tx, true), &mut out);
        assert_eq!(sends(&out), vec![(n(2), credit(s.tx, 30)), (n(3), ack(s.tx))]);
        out.clear();
        a.on_message(n(3), decide(s.tx, true), &mut out);
        let mut want = vec![(n(3), ack(s.tx))];
        if relay {
            want.insert(0, (n(2), credit(s.tx, 30)));
        }
        assert_eq!(sends(&out), want, "relay={relay}");
        assert_eq!(balance(&a), Amount(70), "debited once");
    }
}

// What a node owes and is owed across a restart (live mode's resync): a credit side
// lists exactly the transfers from that peer it voted on and was not paid for; a debit
// side pays again exactly those it committed.
#[test]
fn owed_money_is_exactly_the_unpaid_credits() {
    let mut b = prepared(2, 0, &spec(1, 1, 2, 10, 1));
    let mut out = Vec::new();
    b.on_message(n(3), prepare(&spec(2, 3, 2, 5, 3)), &mut out);
    b.on_message(n(1), prepare(&spec(3, 2, 1, 7, 1)), &mut out);
    b.on_message(n(1), prepare(&spec(4, 1, 2, 9, 1)), &mut out);
    b.on_message(n(1), credit(TxnId(4), 9), &mut out);
    assert_eq!(b.part.owed_by(n(1)), vec![TxnId(1)], "not T2 (other peer), T3 (debit), T4 (paid)");
    assert_eq!(b.part.owed_by(n(3)), vec![TxnId(2)]);
    assert_eq!(b.part.paid_to(TxnId(4), n(1)), None, "a credit side has nothing to pay");
    let s = spec(5, 1, 2, 30, 3);
    let mut a = prepared(1, 100, &s);
    assert_eq!(a.part.paid_to(s.tx, n(2)), None, "not committed yet");
    a.on_message(n(3), decide(s.tx, true), &mut out);
    assert_eq!(a.part.paid_to(s.tx, n(2)), Some(credit(s.tx, 30)));
    assert_eq!(a.part.paid_to(s.tx, n(3)), None, "only the credit side is paid");
    assert_eq!(a.part.paid_to(TxnId(99), n(2)), None);
}

// A committed coordinator whose acks are missing sends the decision again only to those
// that have not acked; as the debit side it sends the money instead of the decision.
#[test]
fn a_timed_out_commit_is_resent_only_to_who_has_not_acked() {
    let s = spec(1, 1, 2, 30, 3);
    let mut c = Node::new(n(3), Amount(0));
    let mut out = Vec::new();
    start(&mut c, &s, &mut out);
    c.on_message(n(1), vote(s.tx, None), &mut out);
    c.on_message(n(2), vote(s.tx, None), &mut out);
    c.on_message(n(1), ack(s.tx), &mut out);
    out.clear();
    timeout(&mut c, s.tx, AbortReason::Timeout, &mut out);
    assert_eq!(sends(&out), vec![(n(2), decide(s.tx, true))]);
    let s = spec(2, 1, 2, 30, 1);
    let mut a = Node::new(n(1), Amount(100));
    out.clear();
    start(&mut a, &s, &mut out);
    a.on_message(n(2), vote(s.tx, None), &mut out);
    out.clear();
    timeout(&mut a, s.tx, AbortReason::Timeout, &mut out);
    assert_eq!(sends(&out), vec![(n(2), credit(s.tx, 30))]);
    assert!(matches!(a.proto.coord(s.tx), Some(CoordState::Committed(_))));
    assert_eq!(a.waiting(), vec![s.tx]);
    out.clear();
    a.on_message(n(2), ack(s.tx), &mut out);
    assert_eq!(a.proto.coord(s.tx), Some(&CoordState::Ended));
    assert!(a.waiting().is_empty() && a.proto.finished(s.tx));
    out.clear();
    timeout(&mut a, s.tx, AbortReason::Timeout, &mut out);
    assert!(out.is_empty(), "an ended transfer waits on nothing: {out:?}");
}

// A voting coordinator that times out aborts with the reason given, and tells both.
#[test]
fn a_voting_coordinator_times_out_into_an_abort() {
    let s = spec(1, 1, 2, 30, 3);
    let mut c = Node::new(n(3), Amount(0));
    let mut out = Vec::new();
    start(&mut c, &s, &mut out);
    out.clear();
    timeout(&mut c, s.tx, AbortReason::NodeDown, &mut out);
    assert_eq!(decided(&out), Some(TxOutcome::Aborted(AbortReason::NodeDown)));
    let abort = decide(s.tx, false);
    assert_eq!(sends(&out), vec![(n(1), abort.clone()), (n(2), abort)]);
    assert!(out.contains(&Effect::Log {
        rec: Record::TwoPc(TwoPcRecord::Decision { spec: s.clone(), commit: false }),
        force: Force::Lazy
    }));
}

// A coordinator that is also a participant never asks itself: in doubt means asking a
// remote coordinator only.
#[test]
fn a_coordinator_participant_does_not_ask_itself() {
    let s = spec(1, 1, 2, 30, 2);
    let mut b = Node::new(n(2), Amount(0));
    let mut out = Vec::new();
    start(&mut b, &s, &mut out);
    assert_eq!(sends(&out), vec![(n(1), prepare(&s))]);
    assert_eq!(b.part.in_doubt(), vec![s.tx]);
    out.clear();
    timeout(&mut b, s.tx, AbortReason::Timeout, &mut out);
    assert!(!sends(&out)
        .iter()
        .any(|(to, m)| *to == n(2) || matches!(m, CommitMsg::TwoPc(TwoPcMsg::DecisionReq { .. }))));
    assert_eq!(decided(&out), Some(TxOutcome::Aborted(AbortReason::Timeout)));
}

// Waiting: who is waited on, and with whom (what a restarted peer must be sent again).
// `waiting_with` is the whole node's question: a branch fed the same inputs answers it.
#[test]
fn waiting_lists_exactly_the_unfinished_transfers_of_each_peer() {
    let mut a = Node::new(n(1), Amount(100));
    let mut out = Vec::new();
    start(&mut a, &spec(1, 1, 2, 10, 1), &mut out);
    a.on_message(n(3), prepare(&spec(2, 1, 4, 10, 3)), &mut out);
    start(&mut a, &spec(3, 1, 5, 500, 1), &mut out); // short funds: aborted at once
    assert_eq!(a.waiting(), vec![TxnId(1), TxnId(2)]);
    assert_eq!(a.part.in_doubt(), vec![TxnId(1), TxnId(2)]);
    let mut branch = Branch::new(n(1), Amount(100));
    branch.on_setup(&[n(2), n(3), n(4), n(5)], &[], &mut out);
    branch.on_start(&spec(1, 1, 2, 10, 1), Protocol::TwoPc, &mut out);
    branch.on_deliver(n(3), ChannelMsg::Commit(prepare(&spec(2, 1, 4, 10, 3))), &mut out);
    branch.on_start(&spec(3, 1, 5, 500, 1), Protocol::TwoPc, &mut out);
    assert_eq!(branch.waiting(), a.waiting());
    assert_eq!(branch.waiting_with(n(2)), vec![TxnId(1)]);
    assert_eq!(branch.waiting_with(n(3)), vec![TxnId(2)], "the coordinator");
    assert_eq!(branch.waiting_with(n(4)), vec![TxnId(2)], "the other participant");
    assert!(branch.waiting_with(n(5)).is_empty());
    assert_eq!(a.part.state(TxnId(2)), Some(LegState::Prepared { commit_known: false }));
}

// Recovery asks the remote coordinator of every transfer in doubt, and only it.
#[test]
fn recovery_in_doubt_asks_the_coordinator() {
    let s = spec(1, 1, 2, 30, 3);
    let opened = |b| Record::Opened { balance: Amount(b) };
    let prepared = |s: &TxSpec| Record::TwoPc(TwoPcRecord::Prepared { spec: s.clone() });
    let log = [opened(0), prepared(&s)];
    let mut out = Vec::new();
    let b = Node::recover(n(2), &log, &mut out);
    assert_eq!(out, vec![send(n(3), decision_req(s.tx))]);
    assert_eq!(b.part.in_doubt(), vec![s.tx]);
    // Coordinator and participant both: its own Prepared asks nobody.
    let s = spec(2, 1, 2, 30, 2);
    let log = [opened(0), prepared(&s)];
    out.clear();
    Node::recover(n(2), &log, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // A decided or applied transfer asks nothing either.
    let s = spec(3, 1, 2, 30, 3);
    let log = [opened(100), prepared(&s), Record::Leg(LegRecord::Committed { spec: s.clone() })];
    out.clear();
    let a = Node::recover(n(1), &log, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!((balance(&a), held(&a)), (Amount(70), Amount(0)));
}

// A coordinator that is the credit side recovers a commit: it asks for nothing it has
// and ends only when the money has come (its own leg is not applied by the decision).
#[test]
fn a_recovered_credit_coordinator_ends_only_after_the_money() {
    let s = spec(1, 1, 2, 30, 2);
    let log = [
        Record::Opened { balance: Amount(5) },
        Record::TwoPc(TwoPcRecord::Prepared { spec: s.clone() }),
        Record::TwoPc(TwoPcRecord::Decision { spec: s.clone(), commit: true }),
    ];
    let mut out = Vec::new();
    let mut b = Node::recover(n(2), &log, &mut out);
    assert_eq!(
        out,
        vec![
            Effect::Decided { tx: s.tx, outcome: TxOutcome::Committed },
            send(n(1), decide(s.tx, true)),
        ]
    );
    out.clear();
    b.on_message(n(1), ack(s.tx), &mut out);
    assert!(matches!(b.proto.coord(s.tx), Some(CoordState::Committed(_))), "its own leg is not in");
    b.on_message(n(1), credit(s.tx, 30), &mut out);
    assert_eq!(b.proto.coord(s.tx), Some(&CoordState::Ended));
    assert_eq!(balance(&b), Amount(35));
}

// Recovery of a debit coordinator's commit: debited once, the money sent again, and it
// waits for the credit side's ack.
#[test]
fn a_recovered_debit_coordinator_pays_again_and_waits_for_the_ack() {
    let s = spec(1, 1, 2, 30, 1);
    let log = [
        Record::Opened { balance: Amount(100) },
        Record::Sent { to: n(2), amount: Amount(5) },
        Record::Deposited { from: n(2), amount: Amount(2) },
        Record::TwoPc(TwoPcRecord::Decision { spec: s.clone(), commit: true }),
    ];
    let mut out = Vec::new();
    let a = Node::recover(n(1), &log, &mut out);
    assert_eq!((balance(&a), held(&a)), (Amount(67), Amount(0)));
    assert_eq!(sends(&out), vec![(n(2), credit(s.tx, 30))], "its own ack is internal");
    assert_eq!(a.waiting(), vec![s.tx]);
    let mut log2 = log.to_vec();
    log2.push(Record::TwoPc(TwoPcRecord::End { tx: s.tx }));
    out.clear();
    let a = Node::recover(n(1), &log2, &mut out);
    assert!(out.is_empty() && a.waiting().is_empty(), "{out:?}");
}

// Recovery of an abort: a hold is released by the coordinator's abort record or the
// participant's; nothing is sent.
#[test]
fn a_recovered_abort_releases_the_hold() {
    let s = spec(1, 1, 2, 30, 3);
    for last in [
        Record::Leg(LegRecord::Aborted { tx: s.tx }),
        Record::TwoPc(TwoPcRecord::Decision { spec: s.clone(), commit: false }),
    ] {
        let log = [
            Record::Opened { balance: Amount(100) },
            Record::TwoPc(TwoPcRecord::Prepared { spec: s.clone() }),
            last.clone(),
        ];
        let mut out = Vec::new();
        let a = Node::recover(n(1), &log, &mut out);
        assert_eq!((balance(&a), held(&a)), (Amount(100), Amount(0)), "{last:?}");
        assert!(a.part.in_doubt().is_empty());
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
    b.on_deliver(n(1), ChannelMsg::Commit(prepare(&s)), &mut out);
    b.on_begin_snapshot(SnapshotId(0), &mut out);
    let money = ChannelMsg::Commit(credit(s.tx, 30));
    b.on_deliver(n(1), money.clone(), &mut out);
    b.on_deliver(n(1), money, &mut out);
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
    b.on_deliver(n(3), ChannelMsg::Commit(prepare(&s)), &mut out);
    out.clear();
    b.on_timeout(s.tx, AbortReason::Timeout, &[n(1), n(3)], &mut out);
    assert_eq!(out, vec![send(n(3), decision_req(s.tx))]);
}
