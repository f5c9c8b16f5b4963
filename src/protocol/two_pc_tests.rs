//! Two-phase commit's unit tests (beside `two_pc.rs`, kept apart so that the machine
//! reads in one sitting).

use super::*;

fn n(i: u32) -> NodeId {
    NodeId(i)
}
fn spec(from: u32, to: u32, amount: u64, coord: u32) -> TxSpec {
    TxSpec { tx: TxnId(1), from: n(from), to: n(to), amount: Amount(amount), coord: n(coord) }
}
fn sends(out: &[TxEffect]) -> Vec<(NodeId, TxMsg)> {
    out.iter()
        .filter_map(|e| if let TxEffect::Send { to, msg } = e { Some((*to, *msg)) } else { None })
        .collect()
}
fn forced(out: &[TxEffect]) -> Vec<TxRecord> {
    out.iter()
        .filter_map(|e| if let TxEffect::Log { rec, force: true } = e { Some(*rec) } else { None })
        .collect()
}

// The happy path, debit node coordinating: three forced writes, one money message.
#[test]
fn a_two_node_transfer_commits_with_three_forced_writes() {
    let s = spec(1, 2, 30, 1);
    let (mut a, mut b) = (TxNode::new(n(1), Amount(100)), TxNode::new(n(2), Amount(5)));
    let mut out = Vec::new();
    a.on_start(s, &mut out);
    assert_eq!(sends(&out), vec![(n(2), TxMsg::Prepare { spec: s })]);
    assert!(forced(&out).is_empty(), "the coordinator's own leg is not logged yet");
    assert_eq!(a.held(), Amount(30));
    let mut out_b = Vec::new();
    b.on_message(n(1), TxMsg::Prepare { spec: s }, &mut out_b);
    assert_eq!(forced(&out_b), vec![TxRecord::Prepared { spec: s }]);
    assert_eq!(sends(&out_b), vec![(n(1), TxMsg::Vote { tx: s.tx, no: None })]);
    out.clear();
    a.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    assert_eq!(forced(&out), vec![TxRecord::Decision { spec: s, commit: true }]);
    assert!(out.contains(&TxEffect::Decided { tx: s.tx, outcome: Outcome::Committed }));
    assert_eq!((a.balance(), a.held()), (Amount(70), Amount(0)));
    let money: Vec<_> = sends(&out).into_iter().filter(|m| m.1.money().is_some()).collect();
    assert_eq!(money, vec![(n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) })]);
    out_b.clear();
    b.on_message(n(1), TxMsg::Decide { tx: s.tx, commit: true }, &mut out_b);
    b.on_message(n(1), TxMsg::Credit { tx: s.tx, amount: Amount(30) }, &mut out_b);
    assert_eq!(forced(&out_b), vec![TxRecord::Committed { spec: s }]);
    assert_eq!(b.balance(), Amount(35));
    out.clear();
    a.on_message(n(2), TxMsg::Ack { tx: s.tx }, &mut out);
    assert_eq!(a.coord(s.tx), Some(&CoordState::Ended));
}

// Funds decide a NO, before anything is sent; a credit side always votes YES, even
// while it is in another unfinished transaction (escrow: no busy votes).
#[test]
fn short_funds_abort_and_a_credit_side_always_votes_yes() {
    let mut a = TxNode::new(n(1), Amount(10));
    let mut out = Vec::new();
    a.on_start(spec(1, 2, 11, 1), &mut out);
    assert!(out.contains(&TxEffect::Decided {
        tx: TxnId(1),
        outcome: Outcome::Aborted(AbortReason::InsufficientFunds)
    }));
    assert!(sends(&out).is_empty(), "a local NO aborts before any Prepare leaves");
    let mut b = TxNode::new(n(2), Amount(0));
    let mut out = Vec::new();
    b.on_message(n(3), TxMsg::Prepare { spec: spec(1, 2, 1, 3) }, &mut out);
    let s2 = TxSpec { tx: TxnId(2), ..spec(4, 2, 1, 3) };
    out.clear();
    b.on_message(n(3), TxMsg::Prepare { spec: s2 }, &mut out);
    assert_eq!(sends(&out), vec![(n(3), TxMsg::Vote { tx: TxnId(2), no: None })]);
    assert_eq!(b.in_doubt(), vec![TxnId(1), TxnId(2)]);
    assert_eq!(b.held(), Amount(0), "a credit side holds nothing");
}

// Escrow: several transactions hold reservations at once, each from what is still
// available, so money is never promised twice; a decision frees its reservation;
// two debits the balance covers together both commit.
#[test]
fn reservations_are_amounts_and_never_promise_money_twice() {
    let mut a = TxNode::new(n(1), Amount(100));
    let t = |tx, amount| TxSpec { tx: TxnId(tx), ..spec(1, 2, amount, 1) };
    let decided = |out: &[TxEffect]| {
        out.iter().find_map(|e| match e {
            TxEffect::Decided { outcome, .. } => Some(*outcome),
            _ => None,
        })
    };
    let mut out = Vec::new();
    a.on_start(t(1, 60), &mut out);
    assert_eq!(decided(&out), None);
    out.clear();
    a.on_start(t(2, 50), &mut out);
    assert_eq!(decided(&out), Some(Outcome::Aborted(AbortReason::InsufficientFunds)));
    out.clear();
    a.on_start(t(3, 40), &mut out);
    assert_eq!(decided(&out), None);
    assert_eq!((a.held(), a.available()), (Amount(100), Amount(0)));
    assert_eq!(a.in_doubt(), vec![TxnId(1), TxnId(3)]);
    out.clear();
    a.on_start(t(4, 0), &mut out);
    assert_eq!(decided(&out), None, "a zero amount is always covered");
    out.clear();
    a.on_message(n(2), TxMsg::Vote { tx: TxnId(1), no: None }, &mut out);
    assert_eq!(decided(&out), Some(Outcome::Committed));
    assert_eq!((a.balance(), a.held()), (Amount(40), Amount(40)));
    assert_eq!(a.in_doubt(), vec![TxnId(3), TxnId(4)], "the commit freed its reservation");
    assert_eq!(a.waiting_with(n(2)), vec![TxnId(1), TxnId(3), TxnId(4)]);
    assert!(a.waiting_with(n(5)).is_empty());
    out.clear();
    a.on_message(n(2), TxMsg::Vote { tx: TxnId(3), no: None }, &mut out);
    assert_eq!(decided(&out), Some(Outcome::Committed));
    assert_eq!((a.balance(), a.held()), (Amount(0), Amount(0)));
}

// The NO that decides an abort ends that voter's part: the coordinator sends the abort
// only to the others (here: the debit side, which holds the money).
#[test]
fn the_participant_whose_no_aborts_gets_no_abort_message() {
    let s = spec(1, 2, 5, 3);
    let mut c = TxNode::new(n(3), Amount(0));
    let mut out = Vec::new();
    c.on_start(s, &mut out);
    out.clear();
    let no = Some(AbortReason::InsufficientFunds);
    c.on_message(n(2), TxMsg::Vote { tx: s.tx, no }, &mut out);
    assert_eq!(sends(&out), vec![(n(1), TxMsg::Decide { tx: s.tx, commit: false })]);
    assert!(c.finished(s.tx), "an aborted coordinator waits on nothing");
    // Debit side coordinating: the credit side's NO is the transfer's last message.
    let s = spec(1, 2, 5, 1);
    let mut a = TxNode::new(n(1), Amount(50));
    out.clear();
    a.on_start(s, &mut out);
    assert!(!a.finished(s.tx));
    out.clear();
    a.on_message(n(2), TxMsg::Vote { tx: s.tx, no }, &mut out);
    assert!(sends(&out).is_empty());
    assert_eq!((a.held(), a.finished(s.tx)), (Amount(0), true));
}

// A YES is never taken back: a timeout in doubt asks the coordinator, it does not abort.
#[test]
fn a_participant_in_doubt_asks_and_never_decides_alone() {
    let s = spec(1, 2, 5, 3);
    let mut b = TxNode::new(n(2), Amount(0));
    let mut out = Vec::new();
    b.on_message(n(3), TxMsg::Prepare { spec: s }, &mut out);
    out.clear();
    b.on_timeout(s.tx, AbortReason::Timeout, &mut out);
    assert_eq!(sends(&out), vec![(n(3), TxMsg::DecisionReq { tx: s.tx })]);
    assert_eq!(b.in_doubt(), vec![s.tx]);
}

// Presumed abort: a coordinator that has no record of a transaction answers abort, and
// one still voting aborts before answering.
#[test]
fn inquiries_about_unknown_or_voting_transactions_get_abort() {
    let mut c = TxNode::new(n(3), Amount(0));
    let mut out = Vec::new();
    c.on_message(n(2), TxMsg::DecisionReq { tx: TxnId(9) }, &mut out);
    assert_eq!(sends(&out), vec![(n(2), TxMsg::Decide { tx: TxnId(9), commit: false })]);
    let s = spec(1, 2, 5, 3);
    out.clear();
    c.on_start(s, &mut out);
    c.on_message(n(2), TxMsg::DecisionReq { tx: s.tx }, &mut out);
    assert!(matches!(c.coord(s.tx), Some(CoordState::Aborted(_))));
    out.clear();
    c.on_message(n(1), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    c.on_message(n(2), TxMsg::Vote { tx: s.tx, no: None }, &mut out);
    assert!(forced(&out).is_empty(), "no commit after answering abort");
}

// Recovery: a coordinator that logged COMMIT and crashed finishes it from its log.
#[test]
fn a_coordinator_recovers_a_logged_commit_and_resends() {
    let s = spec(1, 2, 30, 1);
    let log =
        [TxRecord::Opened { balance: Amount(100) }, TxRecord::Decision { spec: s, commit: true }];
    let mut out = Vec::new();
    let a = TxNode::recover(n(1), &log, &mut out);
    assert_eq!((a.balance(), a.held()), (Amount(70), Amount(0)));
    assert!(sends(&out).contains(&(n(2), TxMsg::Credit { tx: s.tx, amount: Amount(30) })));
    assert!(matches!(a.coord(s.tx), Some(CoordState::Committed(_))));
}

// Idempotence: a duplicated credit is applied once and re-acked.
#[test]
fn a_duplicated_credit_is_applied_once() {
    let s = spec(1, 2, 7, 1);
    let mut b = TxNode::new(n(2), Amount(0));
    let mut out = Vec::new();
    b.on_message(n(1), TxMsg::Prepare { spec: s }, &mut out);
    b.on_message(n(1), TxMsg::Credit { tx: s.tx, amount: Amount(7) }, &mut out);
    out.clear();
    b.on_message(n(1), TxMsg::Credit { tx: s.tx, amount: Amount(7) }, &mut out);
    assert_eq!(b.balance(), Amount(7));
    assert_eq!(sends(&out), vec![(n(1), TxMsg::Ack { tx: s.tx })]);
    assert!(forced(&out).is_empty());
}
