//! Two-phase commit's unit tests (beside `two_pc.rs`, kept apart so that the machine
//! reads in one sitting).

use super::*;
use crate::protocol::commit::Machine;
use crate::protocol::effect::Effect;
use crate::protocol::record::LegRecord;
use crate::protocol::Branch;
use crate::wire::{ChannelMsg, CommitMsg};

/// One node running two-phase commit.
type Node = Machine<TwoPc>;

/// Every node of the system (a timeout is given them all as reachable).
const NODES: [NodeId; 5] = [NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5)];

fn n(i: u32) -> NodeId {
    NodeId(i)
}
fn spec(from: u32, to: u32, amount: u64, coord: u32) -> TxSpec {
    TxSpec::transfer(TxnId(1), n(from), n(to), Amount(amount), n(coord))
}
/// `s` numbered `tx`.
fn with_tx(tx: u64, mut s: TxSpec) -> TxSpec {
    s.tx = TxnId(tx);
    s
}
fn two(m: TwoPcMsg) -> CommitMsg {
    CommitMsg::TwoPc(m)
}
fn prepare(s: &TxSpec) -> CommitMsg {
    two(TwoPcMsg::Prepare { spec: s.clone() })
}
fn vote(tx: TxnId, no: Option<AbortReason>) -> CommitMsg {
    two(TwoPcMsg::Vote { tx, no })
}
fn credit(tx: TxnId, amount: u64) -> CommitMsg {
    CommitMsg::Credit { tx, amount: Amount(amount) }
}
fn sends(out: &[Effect]) -> Vec<(NodeId, CommitMsg)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send { to, msg: ChannelMsg::Commit(m) } => Some((*to, m.clone())),
            Effect::Send { msg, .. } => panic!("a commit machine sent {msg:?}"),
            _ => None,
        })
        .collect()
}
fn forced(out: &[Effect]) -> Vec<Record> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Log { rec, force } if force.forced() => Some(rec.clone()),
            _ => None,
        })
        .collect()
}
fn balance(node: &Node) -> Amount {
    node.part.accounts().total()
}
fn held(node: &Node) -> Amount {
    node.part.accounts().held()
}

// The happy path, debit node coordinating: three forced writes, one money message.
#[test]
fn a_two_node_transfer_commits_with_three_forced_writes() {
    let s = spec(1, 2, 30, 1);
    let (mut a, mut b) = (Node::new(n(1), Amount(100)), Node::new(n(2), Amount(5)));
    let mut out = Vec::new();
    a.start(&s, &NODES, &mut out);
    assert_eq!(sends(&out), vec![(n(2), prepare(&s))]);
    assert!(forced(&out).is_empty(), "the coordinator's own leg is not logged yet");
    assert_eq!(held(&a), Amount(30));
    let mut out_b = Vec::new();
    b.on_message(n(1), prepare(&s), &mut out_b);
    assert_eq!(forced(&out_b), vec![Record::TwoPc(TwoPcRecord::Prepared { spec: s.clone() })]);
    assert_eq!(sends(&out_b), vec![(n(1), vote(s.tx, None))]);
    out.clear();
    a.on_message(n(2), vote(s.tx, None), &mut out);
    assert_eq!(
        forced(&out),
        vec![Record::TwoPc(TwoPcRecord::Decision { spec: s.clone(), commit: true })]
    );
    assert!(out.contains(&Effect::Decided { tx: s.tx, outcome: TxOutcome::Committed }));
    assert_eq!((balance(&a), held(&a)), (Amount(70), Amount(0)));
    let money: Vec<_> = sends(&out).into_iter().filter(|m| m.1.money().is_some()).collect();
    assert_eq!(money, vec![(n(2), credit(s.tx, 30))]);
    out_b.clear();
    b.on_message(n(1), two(TwoPcMsg::Decide { tx: s.tx, commit: true }), &mut out_b);
    b.on_message(n(1), credit(s.tx, 30), &mut out_b);
    let credited = LegRecord::Credited { spec: s.clone(), from: n(1) };
    assert_eq!(forced(&out_b), vec![Record::Leg(credited)]);
    assert_eq!(balance(&b), Amount(35));
    out.clear();
    a.on_message(n(2), two(TwoPcMsg::Ack { tx: s.tx }), &mut out);
    assert_eq!(a.proto.coord(s.tx), Some(&CoordState::Ended));
}

// Funds decide a NO, before anything is sent; a credit side always votes YES, even
// while it is in another unfinished transaction (escrow: no busy votes).
#[test]
fn short_funds_abort_and_a_credit_side_always_votes_yes() {
    let mut a = Node::new(n(1), Amount(10));
    let mut out = Vec::new();
    a.start(&spec(1, 2, 11, 1), &NODES, &mut out);
    assert!(out.contains(&Effect::Decided {
        tx: TxnId(1),
        outcome: TxOutcome::Aborted(AbortReason::InsufficientFunds)
    }));
    assert!(sends(&out).is_empty(), "a local NO aborts before any Prepare leaves");
    let mut b = Node::new(n(2), Amount(0));
    let mut out = Vec::new();
    b.on_message(n(3), prepare(&spec(1, 2, 1, 3)), &mut out);
    let s2 = with_tx(2, spec(4, 2, 1, 3));
    out.clear();
    b.on_message(n(3), prepare(&s2), &mut out);
    assert_eq!(sends(&out), vec![(n(3), vote(TxnId(2), None))]);
    assert_eq!(b.part.in_doubt(), vec![TxnId(1), TxnId(2)]);
    assert_eq!(held(&b), Amount(0), "a credit side holds nothing");
}

// Escrow: several transactions hold reservations at once, each from what is still
// available, so money is never promised twice; a decision frees its reservation;
// two debits the balance covers together both commit.
#[test]
fn reservations_are_amounts_and_never_promise_money_twice() {
    let mut a = Node::new(n(1), Amount(100));
    let t = |tx, amount| with_tx(tx, spec(1, 2, amount, 1));
    let decided = |out: &[Effect]| {
        out.iter().find_map(|e| match e {
            Effect::Decided { outcome, .. } => Some(*outcome),
            _ => None,
        })
    };
    let mut out = Vec::new();
    a.start(&t(1, 60), &NODES, &mut out);
    assert_eq!(decided(&out), None);
    out.clear();
    a.start(&t(2, 50), &NODES, &mut out);
    assert_eq!(decided(&out), Some(TxOutcome::Aborted(AbortReason::InsufficientFunds)));
    out.clear();
    a.start(&t(3, 40), &NODES, &mut out);
    assert_eq!(decided(&out), None);
    assert_eq!((held(&a), a.part.accounts().own().available()), (Amount(100), Amount(0)));
    assert_eq!(a.part.in_doubt(), vec![TxnId(1), TxnId(3)]);
    out.clear();
    a.start(&t(4, 0), &NODES, &mut out);
    assert_eq!(decided(&out), None, "a zero amount is always covered");
    out.clear();
    a.on_message(n(2), vote(TxnId(1), None), &mut out);
    assert_eq!(decided(&out), Some(TxOutcome::Committed));
    assert_eq!((balance(&a), held(&a)), (Amount(40), Amount(40)));
    assert_eq!(a.part.in_doubt(), vec![TxnId(3), TxnId(4)], "the commit freed its reservation");
    // `waiting_with` is the whole node's question: a branch fed the same inputs answers it.
    let mut whole = Branch::new(n(1), Amount(100));
    let mut ignored = Vec::new();
    for (tx, amount) in [(1, 60), (2, 50), (3, 40), (4, 0)] {
        whole.on_start(&t(tx, amount), Protocol::TwoPc, &mut ignored);
    }
    whole.on_deliver(n(2), ChannelMsg::Commit(vote(TxnId(1), None)), &mut ignored);
    assert_eq!(whole.waiting(), a.waiting());
    assert_eq!(whole.waiting_with(n(2)), vec![TxnId(1), TxnId(3), TxnId(4)]);
    assert!(whole.waiting_with(n(5)).is_empty());
    out.clear();
    a.on_message(n(2), vote(TxnId(3), None), &mut out);
    assert_eq!(decided(&out), Some(TxOutcome::Committed));
    assert_eq!((balance(&a), held(&a)), (Amount(0), Amount(0)));
}

// The NO that decides an abort ends that voter's part: the coordinator sends the abort
// only to the others (here: the debit side, which holds the money).
#[test]
fn the_participant_whose_no_aborts_gets_no_abort_message() {
    let s = spec(1, 2, 5, 3);
    let mut c = Node::new(n(3), Amount(0));
    let mut out = Vec::new();
    c.start(&s, &NODES, &mut out);
    out.clear();
    let no = Some(AbortReason::InsufficientFunds);
    c.on_message(n(2), vote(s.tx, no), &mut out);
    assert_eq!(sends(&out), vec![(n(1), two(TwoPcMsg::Decide { tx: s.tx, commit: false }))]);
    assert!(c.proto.finished(s.tx), "an aborted coordinator waits on nothing");
    // Debit side coordinating: the credit side's NO is the transfer's last message.
    let s = spec(1, 2, 5, 1);
    let mut a = Node::new(n(1), Amount(50));
    out.clear();
    a.start(&s, &NODES, &mut out);
    assert!(!a.proto.finished(s.tx));
    out.clear();
    a.on_message(n(2), vote(s.tx, no), &mut out);
    assert!(sends(&out).is_empty());
    assert_eq!((held(&a), a.proto.finished(s.tx)), (Amount(0), true));
}

// A YES is never taken back: a timeout in doubt asks the coordinator, it does not abort.
#[test]
fn a_participant_in_doubt_asks_and_never_decides_alone() {
    let s = spec(1, 2, 5, 3);
    let mut b = Node::new(n(2), Amount(0));
    let mut out = Vec::new();
    b.on_message(n(3), prepare(&s), &mut out);
    out.clear();
    b.on_timeout(s.tx, AbortReason::Timeout, &NODES, &mut out);
    assert_eq!(sends(&out), vec![(n(3), two(TwoPcMsg::DecisionReq { tx: s.tx }))]);
    assert_eq!(b.part.in_doubt(), vec![s.tx]);
}

// Presumed abort: a coordinator that has no record of a transaction answers abort, and
// one still voting aborts before answering.
#[test]
fn inquiries_about_unknown_or_voting_transactions_get_abort() {
    let mut c = Node::new(n(3), Amount(0));
    let mut out = Vec::new();
    c.on_message(n(2), two(TwoPcMsg::DecisionReq { tx: TxnId(9) }), &mut out);
    assert_eq!(sends(&out), vec![(n(2), two(TwoPcMsg::Decide { tx: TxnId(9), commit: false }))]);
    let s = spec(1, 2, 5, 3);
    out.clear();
    c.start(&s, &NODES, &mut out);
    c.on_message(n(2), two(TwoPcMsg::DecisionReq { tx: s.tx }), &mut out);
    assert!(matches!(c.proto.coord(s.tx), Some(CoordState::Aborted(_))));
    out.clear();
    c.on_message(n(1), vote(s.tx, None), &mut out);
    c.on_message(n(2), vote(s.tx, None), &mut out);
    assert!(forced(&out).is_empty(), "no commit after answering abort");
}

// Recovery: a coordinator that logged COMMIT and crashed finishes it from its log.
#[test]
fn a_coordinator_recovers_a_logged_commit_and_resends() {
    let s = spec(1, 2, 30, 1);
    let log = [
        Record::Opened { balance: Amount(100) },
        Record::TwoPc(TwoPcRecord::Decision { spec: s.clone(), commit: true }),
    ];
    let mut out = Vec::new();
    let a = Node::recover(n(1), &log, &mut out);
    assert_eq!((balance(&a), held(&a)), (Amount(70), Amount(0)));
    assert!(sends(&out).contains(&(n(2), credit(s.tx, 30))));
    assert!(matches!(a.proto.coord(s.tx), Some(CoordState::Committed(_))));
}

// Idempotence: a duplicated credit is applied once and re-acked.
#[test]
fn a_duplicated_credit_is_applied_once() {
    let s = spec(1, 2, 7, 1);
    let mut b = Node::new(n(2), Amount(0));
    let mut out = Vec::new();
    b.on_message(n(1), prepare(&s), &mut out);
    b.on_message(n(1), credit(s.tx, 7), &mut out);
    out.clear();
    b.on_message(n(1), credit(s.tx, 7), &mut out);
    assert_eq!(balance(&b), Amount(7));
    assert_eq!(sends(&out), vec![(n(1), two(TwoPcMsg::Ack { tx: s.tx }))]);
    assert!(forced(&out).is_empty());
}
