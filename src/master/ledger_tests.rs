//! Unit tests of `ledger.rs`, kept apart so the module reads in one sitting.
use super::*;

fn n(i: u32) -> NodeId {
    NodeId(i)
}
fn transfer(a: u64) -> ChannelMsg {
    ChannelMsg::Transfer { amount: Amount(a) }
}
fn marker(k: u32) -> ChannelMsg {
    ChannelMsg::Marker { snapshot: SnapshotId(k) }
}
fn two_nodes() -> Ledger {
    let mut l = Ledger::new();
    l.add_node(n(1), Amount(1000));
    l.add_node(n(2), Amount(500));
    l
}

// Live mode: its snapshots count as complete in the ledger; leaving it, the ledger
// takes the nodes' balances, empties every channel, and a running scripted snapshot
// (finished by live delivery) is complete too, so a new node joins none of them.
#[test]
fn leaving_live_mode_takes_the_nodes_word() {
    let mut l = two_nodes();
    assert!(l.send(n(1), n(2), Amount(300)));
    let scripted = l.begin(n(1));
    assert!(!l.is_complete(scripted));
    let live = l.begin_live();
    assert!(l.is_complete(live));
    assert_eq!(l.members(live), vec![n(1), n(2)]);
    l.resync(
        &[(n(1), Amount(650)), (n(2), Amount(850))]
            .map(|(x, balance)| (x, Money { balance, held: Amount(5), spare: Amount(0) })),
    );
    assert_eq!((l.balance(n(1)), l.held(n(1))), (Amount(650), Amount(5)));
    assert!(l.nonempty().is_empty() && l.money_in_channels() == Amount::ZERO);
    assert!(l.is_complete(scripted));
    assert!(l.add_node(n(3), Amount(1)).is_empty(), "no snapshot left running");
}

// A Send debits and enqueues; one above the balance is refused and changes nothing.
#[test]
fn sends_follow_the_balance() {
    let mut l = two_nodes();
    assert!(l.send(n(1), n(2), Amount(300)));
    assert_eq!(l.balance(n(1)), Amount(700));
    assert_eq!(l.head((n(1), n(2))).cloned(), Some(transfer(300)));
    assert!(!l.send(n(2), n(1), Amount(5000)));
    assert!(l.is_empty((n(2), n(1))));
    assert_eq!(l.balance(n(2)), Amount(500));
    l.deliver((n(1), n(2)));
    assert_eq!(l.balance(n(2)), Amount(800));
}

// Marker flooding: the initiator's markers, then the first marker makes the receiver record.
#[test]
fn markers_flood_and_complete_the_snapshot() {
    let mut l = two_nodes();
    let k = l.begin(n(1));
    assert_eq!(l.head((n(1), n(2))).cloned(), Some(marker(0)));
    assert!(!l.is_complete(k));
    let d = l.deliver((n(1), n(2)));
    assert_eq!(d, Delivery { msg: marker(0), records: true });
    assert_eq!(l.head((n(2), n(1))).cloned(), Some(marker(0)));
    let d = l.deliver((n(2), n(1)));
    assert_eq!(d, Delivery { msg: marker(0), records: false });
    assert!(l.is_complete(k));
    assert!(l.nonempty().is_empty());
}

// A node created mid-snapshot joins it; a node created after completion does not.
#[test]
fn a_new_node_joins_only_running_snapshots() {
    let mut l = two_nodes();
    let k = l.begin(n(1));
    assert_eq!(l.add_node(n(3), Amount(1)), vec![k]);
    assert!(l.has_recorded(n(3), k));
    assert_eq!(l.head((n(1), n(3))).cloned(), Some(marker(0)), "initiator marks the new channel");
    assert_eq!(l.head((n(3), n(2))).cloned(), Some(marker(0)));
    assert!(l.is_empty((n(2), n(3))), "node 2 has not recorded yet");
    while let Some(&c) = l.nonempty().first() {
        l.deliver(c);
    }
    assert!(l.is_complete(k));
    assert_eq!(l.add_node(n(4), Amount(1)), vec![]);
    assert_eq!(l.members(k), vec![n(1), n(2), n(3)]);
    assert_eq!(l.created(), Amount(1502));
}

// One payer paying two payees in one transaction: the first payee's credit, once
// delivered, does not make the second one's (still in its channel) count for nothing.
// Keyed by (transaction, payer) alone, a scripted Check came out short by the second
// credit (fault script 258, a five-part transaction with one payer and two payees).
#[test]
fn each_payees_credit_counts_until_that_payee_has_it() {
    let mut l = two_nodes();
    l.add_node(n(3), Amount(0));
    let tx = crate::ids::TxnId(7);
    let credit = |a| CommitMsg::Credit { tx, amount: Amount(a) };
    let money = Money { balance: Amount(1000 - 150), held: Amount(0), spare: Amount(850) };
    l.apply_tx(n(1), &[(n(2), credit(100)), (n(3), credit(50))], money);
    assert_eq!(l.money_in_channels(), Amount(150));
    l.deliver((n(1), n(2)));
    assert_eq!(l.money_in_channels(), Amount(50), "node 3's credit is still on its way");
}
