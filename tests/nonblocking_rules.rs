//! Three-phase commit's and Paxos Commit's rules, one test each, on the pure machines
//! (`bank::protocol::commit::Machine`, one node running one protocol) driven by hand
//! through a tiny FIFO network: the forced records before the messages they cover, the
//! textbook's missing-ack rule, the election, TR1–TR4, recovery that never decides alone,
//! Paxos Commit's forced accepts, its unique ballots and its commit rule. The layout is B
//! of the notes: node 1 pays node 2, node 3 coordinates (and is Paxos Commit's third
//! acceptor).

use bank::ids::{Amount, NodeId, TxnId};
use bank::protocol::commit::{CommitProtocol, Facts, Machine};
use bank::protocol::paxos_commit::{acceptors, PaxosCommit};
use bank::protocol::record::{PaxosRecord, Record, ThreeRecord};
use bank::protocol::three_pc::ThreePc;
use bank::protocol::Effect;
use bank::wire::{
    AbortReason, ChannelMsg, CommitMsg, PaxosMsg, Protocol, ThreeMsg, TxOutcome, TxSpec,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

fn n(i: u32) -> NodeId {
    NodeId(i)
}

/// The transfer of every test.
const TX: TxnId = TxnId(1);
/// Every node of the system.
const NODES: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];
const ACCEPTORS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

/// Node 1 pays node 2 30, node 3 coordinates.
fn spec() -> TxSpec {
    TxSpec::transfer(TX, n(1), n(2), Amount(30), n(3))
}

fn three(m: ThreeMsg) -> CommitMsg {
    CommitMsg::ThreePc(m)
}

/// The commit message a send effect carries, if it is one.
fn sent_msg(e: &Effect) -> Option<&CommitMsg> {
    match e {
        Effect::Send { msg: ChannelMsg::Commit(m), .. } => Some(m),
        _ => None,
    }
}

/// Whether `e` forces a record `is` holds for.
fn forces(e: &Effect, is: impl Fn(&Record) -> bool) -> bool {
    matches!(e, Effect::Log { force, rec } if force.forced() && is(rec))
}

/// Three-phase commit's coordinator's record of every YES in.
fn pre_committing(rec: &Record) -> bool {
    matches!(rec, Record::ThreePc(ThreeRecord::PreCommitting { .. }))
}

/// Three-phase commit's participant's record of its pre-commit.
fn pre_committed(rec: &Record) -> bool {
    matches!(rec, Record::ThreePc(ThreeRecord::PreCommitted { .. }))
}

/// Three nodes running protocol `P`, FIFO channels, every record each node logged (to
/// recover from).
struct Net<P> {
    nodes: BTreeMap<NodeId, Machine<P>>,
    logs: BTreeMap<NodeId, Vec<Record>>,
    chans: BTreeMap<(NodeId, NodeId), VecDeque<CommitMsg>>,
    decided: Vec<(NodeId, TxOutcome)>,
    /// Per node, every effect in order (for the forced-before-send rules).
    effects: BTreeMap<NodeId, Vec<Effect>>,
}

impl<P: CommitProtocol> Net<P> {
    fn new() -> Net<P> {
        let mut net = Net {
            nodes: BTreeMap::new(),
            logs: BTreeMap::new(),
            chans: BTreeMap::new(),
            decided: Vec::new(),
            effects: BTreeMap::new(),
        };
        for (i, balance) in [(1, 100), (2, 0), (3, 0)] {
            net.open(i, balance);
        }
        net
    }

    /// A fresh node `i` with `balance`, and its log.
    fn open(&mut self, i: u32, balance: u64) {
        self.nodes.insert(n(i), Machine::new(n(i), Amount(balance)));
        self.logs.insert(n(i), vec![Record::Opened { balance: Amount(balance) }]);
    }

    fn apply(&mut self, at: NodeId, out: Vec<Effect>) {
        for e in &out {
            match e {
                Effect::Send { to, msg: ChannelMsg::Commit(m) } => {
                    self.chans.entry((at, *to)).or_default().push_back(m.clone())
                }
                Effect::Send { msg, .. } => panic!("a commit machine sent {msg:?}"),
                Effect::Log { rec, .. } => self.logs.get_mut(&at).unwrap().push(rec.clone()),
                Effect::Decided { outcome, .. } => self.decided.push((at, *outcome)),
                _ => {}
            }
        }
        self.effects.entry(at).or_default().extend(out);
    }

    /// Node 3 coordinates the transfer.
    fn start(&mut self) {
        if P::PROTOCOL == Protocol::Paxos {
            assert_eq!(acceptors(&spec(), &NODES), ACCEPTORS, "layout B");
        }
        let mut out = Vec::new();
        self.node(3).start(&spec(), &NODES, &mut out);
        self.apply(n(3), out);
    }

    fn node(&mut self, i: u32) -> &mut Machine<P> {
        self.nodes.get_mut(&n(i)).expect("a node")
    }

    /// `msg` arrives at `to` from `from` (not through a channel).
    fn inject(&mut self, from: u32, to: u32, msg: CommitMsg) {
        let mut out = Vec::new();
        self.node(to).on_message(n(from), msg, &mut out);
        self.apply(n(to), out);
    }

    /// Delivers the head of channel `from -> to`; false if it is empty.
    fn deliver(&mut self, from: u32, to: u32) -> bool {
        let Some(msg) = self.chans.get_mut(&(n(from), n(to))).and_then(|q| q.pop_front()) else {
            return false;
        };
        self.inject(from, to, msg);
        true
    }

    /// Delivers everything among the nodes not in `cut` (their channels wait), oldest
    /// channel first, until nothing moves.
    fn settle(&mut self, cut: &[u32]) {
        loop {
            let next = self
                .chans
                .iter()
                .find(|((a, b), q)| !q.is_empty() && !cut.contains(&a.0) && !cut.contains(&b.0));
            let Some(&(a, b)) = next.map(|(k, _)| k) else { return };
            self.deliver(a.0, b.0);
        }
    }

    /// Drops every message to or from `i` (its process died with them).
    fn crash(&mut self, i: u32) {
        self.nodes.remove(&n(i));
        self.chans.retain(|(a, b), _| *a != n(i) && *b != n(i));
    }

    /// A new process for `i`, from its log.
    fn restart(&mut self, i: u32) {
        let mut out = Vec::new();
        let node = Machine::recover(n(i), &self.logs[&n(i)], &mut out);
        self.nodes.insert(n(i), node);
        self.apply(n(i), out);
    }

    fn timeout(&mut self, i: u32, reach: &[u32]) {
        let reach: Vec<NodeId> = reach.iter().map(|&r| n(r)).collect();
        let mut out = Vec::new();
        self.node(i).on_timeout(TX, AbortReason::NodeDown, &reach, &mut out);
        self.apply(n(i), out);
    }

    fn status(&mut self, i: u32) -> &'static str {
        self.node(i).state(TX).word()
    }

    fn sent(&self, from: u32, to: u32) -> Vec<CommitMsg> {
        self.chans.get(&(n(from), n(to))).map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every outcome reported, as a set: one element is agreement.
    fn outcomes(&self) -> BTreeSet<bool> {
        self.decided.iter().map(|(_, o)| matches!(o, TxOutcome::Committed)).collect()
    }
}

/// The votes are in: `Prepare` and both YES votes delivered, nothing of phase two.
fn votes_in<P: CommitProtocol>(net: &mut Net<P>) {
    net.start();
    net.deliver(3, 1);
    net.deliver(3, 2);
    net.deliver(1, 3);
    net.deliver(2, 3);
}

/// Index of the first effect at `node` matching `f`.
fn first<P>(net: &Net<P>, node: u32, f: impl Fn(&Effect) -> bool) -> usize {
    net.effects[&n(node)].iter().position(f).expect("the effect happened")
}

fn is_pre(m: &CommitMsg) -> bool {
    matches!(m, CommitMsg::ThreePc(ThreeMsg::PreCommit { .. }))
}

// 3PC, step 2: the coordinator forces PreCommitting before any PreCommit leaves, and a
// participant forces PreCommitted before it acks.
#[test]
fn three_pc_forces_each_pre_commit_before_the_message_it_covers() {
    let mut net = Net::<ThreePc>::new();
    votes_in(&mut net);
    let send = first(&net, 3, |e| sent_msg(e).is_some_and(is_pre));
    let log = first(&net, 3, |e| forces(e, pre_committing));
    assert!(log < send, "PreCommitting forced before PreCommit");
    net.deliver(3, 1);
    let ack = first(&net, 1, |e| {
        matches!(sent_msg(e), Some(CommitMsg::ThreePc(ThreeMsg::PreCommitAck { .. })))
    });
    let log = first(&net, 1, |e| forces(e, pre_committed));
    assert!(log < ack, "PreCommitted forced before the ack");
    assert_eq!(net.status(1), "PRECOMMITTED");
}

// The textbook rule: a coordinator that misses an ack counts the participant as failed
// and commits.
#[test]
fn three_pc_coordinator_commits_when_an_ack_is_missing() {
    let mut net = Net::<ThreePc>::new();
    votes_in(&mut net);
    net.deliver(3, 1);
    net.deliver(1, 3); // node 1's ack; node 2's PreCommit never arrives
    net.timeout(3, &[1]);
    assert_eq!(net.status(3), "COMMITTED");
    assert_eq!(net.outcomes(), BTreeSet::from([true]));
}

// Election: only the lowest participant a node can reach leads; the other asks.
#[test]
fn three_pc_the_lowest_reachable_participant_leads() {
    let mut net = Net::<ThreePc>::new();
    votes_in(&mut net);
    net.crash(3);
    net.timeout(2, &[1]);
    assert_eq!(net.sent(2, 1), vec![three(ThreeMsg::DecisionReq { tx: TX })]);
    assert!(
        net.sent(2, 3).is_empty(),
        "nothing goes to a node it cannot reach: {:?}",
        net.sent(2, 3)
    );
    net.timeout(1, &[2]);
    assert!(matches!(net.sent(1, 2)[..], [CommitMsg::ThreePc(ThreeMsg::StateReq { .. })]));
}

// TR3: every state collected is uncertain, so the leader aborts, and tells the others.
#[test]
fn three_pc_all_uncertain_aborts() {
    let mut net = Net::<ThreePc>::new();
    votes_in(&mut net);
    net.crash(3); // its PreCommits die with it
    net.timeout(1, &[2]);
    net.settle(&[3]);
    assert_eq!((net.status(1), net.status(2)), ("ABORTED", "ABORTED"));
    assert_eq!(net.outcomes(), BTreeSet::from([false]));
}

// TR4: one pre-committed, one uncertain: the leader pre-commits the uncertain, then
// commits.
#[test]
fn three_pc_one_pre_committed_commits() {
    let mut net = Net::<ThreePc>::new();
    votes_in(&mut net);
    net.deliver(3, 1); // PreCommit reaches node 1 only
    net.crash(3);
    net.timeout(1, &[2]);
    net.settle(&[3]);
    assert!(net.effects[&n(2)].iter().any(|e| forces(e, pre_committed)));
    assert_eq!((net.status(1), net.status(2)), ("COMMITTED", "COMMITTED"));
    assert_eq!(net.node(2).part.accounts().total(), Amount(30));
}

// TR1 and TR2 through a leader that learnt the outcome: a node that knows it says it.
#[test]
fn three_pc_a_known_outcome_wins_the_termination() {
    for commit in [true, false] {
        let mut net = Net::<ThreePc>::new();
        votes_in(&mut net);
        // Node 2 learns the outcome first (a DoCommit or an abort), then the coordinator dies.
        let msg = if commit {
            three(ThreeMsg::DoCommit { tx: TX })
        } else {
            three(ThreeMsg::Decide { tx: TX, commit: false })
        };
        net.inject(3, 2, msg);
        net.crash(3);
        net.timeout(1, &[2]);
        net.settle(&[3]);
        let want = if commit { "COMMITTED" } else { "ABORTED" };
        assert_eq!(net.status(1), want, "commit={commit}");
    }
}

// A node that restarts in doubt asks, and does not decide alone even when it times out
// with nobody to reach.
#[test]
fn three_pc_recovery_never_decides_alone() {
    let mut net = Net::<ThreePc>::new();
    votes_in(&mut net);
    net.deliver(3, 1); // node 1 pre-committed
    net.crash(3);
    net.crash(1);
    net.restart(1);
    let before = net.decided.len();
    net.timeout(1, &[]);
    net.timeout(1, &[2]);
    assert_eq!(net.decided.len(), before, "nothing decided");
    assert_eq!(net.status(1), "PRECOMMITTED");
}

// Paxos Commit: an acceptor forces its accept before its phase 2b leaves.
#[test]
fn paxos_acceptors_force_every_accept_before_answering() {
    let mut net = Net::<PaxosCommit>::new();
    net.start();
    net.deliver(3, 1);
    let phase2b =
        first(&net, 1, |e| matches!(sent_msg(e), Some(CommitMsg::Paxos(PaxosMsg::Phase2b { .. }))));
    let forced = first(&net, 1, |e| {
        forces(e, |rec| matches!(rec, Record::Paxos(PaxosRecord::Accept { .. })))
    });
    assert!(forced < phase2b);
}

// Paxos Commit decides commit iff both instances chose prepared; a NO aborts.
#[test]
fn paxos_commits_iff_both_votes_are_prepared() {
    for (balance, commit) in [(100, true), (10, false)] {
        let mut net = Net::<PaxosCommit>::new();
        net.open(1, balance);
        net.start();
        net.settle(&[]);
        assert_eq!(net.outcomes(), BTreeSet::from([commit]), "balance {balance}");
        let want = if commit { "COMMITTED" } else { "ABORTED" };
        assert_eq!((net.status(1), net.status(2)), (want, want));
        // Every ack is in: the coordinator is done, knows its decision, and waits no more.
        let coord = net.node(3);
        assert!(coord.proto.finished(TX), "balance {balance}");
        assert!(coord.waiting().is_empty(), "balance {balance}: {:?}", coord.waiting());
        let outcome = coord.proto.decision(TX).map(|o| matches!(o, TxOutcome::Committed));
        assert_eq!(outcome, Some(commit), "balance {balance}");
    }
}

// Three-phase commit without faults: everyone commits, and the coordinator knows its
// decision, is done, and waits on nothing.
#[test]
fn three_pc_without_faults_commits_and_ends() {
    let mut net = Net::<ThreePc>::new();
    net.start();
    net.settle(&[]);
    assert_eq!(net.outcomes(), BTreeSet::from([true]));
    assert_eq!(
        (net.status(1), net.status(2), net.status(3)),
        ("COMMITTED", "COMMITTED", "COMMITTED")
    );
    let coord = net.node(3);
    assert_eq!(coord.proto.decision(TX), Some(TxOutcome::Committed));
    assert!(coord.proto.finished(TX));
    assert!(coord.waiting().is_empty(), "{:?}", coord.waiting());
}

// Paxos Commit stays live without its coordinator: both participants and two acceptors
// (their own) are enough, and a leader's ballot carries its own id, so two leaders never
// share one.
#[test]
fn paxos_finishes_without_the_coordinator_on_unique_ballots() {
    let mut net = Net::<PaxosCommit>::new();
    votes_in(&mut net);
    net.crash(3);
    net.timeout(1, &[2]);
    net.timeout(2, &[1]);
    for i in [1, 2] {
        let phase1a: Vec<NodeId> = net
            .sent(i, 3 - i)
            .into_iter()
            .filter_map(|m| match m {
                CommitMsg::Paxos(PaxosMsg::Phase1a { bal, .. }) => Some(bal.node),
                _ => None,
            })
            .collect();
        assert!(!phase1a.is_empty(), "node {i} leads a ballot");
        assert!(phase1a.iter().all(|&b| b == n(i)), "node {i}'s ballots are its own");
    }
    net.settle(&[3]);
    for _ in 0..4 {
        net.timeout(1, &[2]);
        net.settle(&[3]);
    }
    assert_eq!((net.status(1), net.status(2)), ("COMMITTED", "COMMITTED"));
    assert_eq!(net.outcomes(), BTreeSet::from([true]));
}

// Recovery from a logged Paxos Commit decision: only the transfer's coordinator goes on
// waiting for acks (its `coordinating` comes back); a participant or acceptor that logged
// the same decision waits on nothing.
#[test]
fn a_recovered_paxos_decision_makes_only_the_coordinator_wait() {
    let decision =
        Record::Paxos(PaxosRecord::Decision { spec: spec(), acceptors: ACCEPTORS, commit: true });
    let log = |balance| vec![Record::Opened { balance: Amount(balance) }, decision.clone()];
    let mut out = Vec::new();
    let coord = Machine::<PaxosCommit>::recover(n(3), &log(0), &mut out);
    assert_eq!(coord.waiting(), [TxnId(1)], "the coordinator waits for the acks");
    let acceptor = Machine::<PaxosCommit>::recover(n(1), &log(100), &mut out);
    assert!(acceptor.waiting().is_empty(), "node 1 is no coordinator: {:?}", acceptor.waiting());
    // Once every ack came in (the End record), the coordinator waits no more.
    let mut ended = log(0);
    ended.push(Record::Paxos(PaxosRecord::End { tx: TxnId(1) }));
    let decided = |out: &[Effect]| out.iter().any(|e| matches!(e, Effect::Decided { .. }));
    assert!(decided(&out), "a coordinator that logged its decision reports it again");
    out.clear();
    let done = Machine::<PaxosCommit>::recover(n(3), &ended, &mut out);
    assert!(done.waiting().is_empty(), "an ended transfer: {:?}", done.waiting());
    assert!(!decided(&out), "an ended transfer is not reported again: {out:?}");
}

// Node 2 as an acceptor only (it logged an accept of node 1's vote, and never voted
// itself): after a restart it leads no ballot, is in doubt about nothing, and so waits on
// nothing; the others' timeouts lead the ballots.
#[test]
fn a_recovered_acceptor_that_leads_nothing_waits_on_nothing() {
    use bank::wire::{Accept, Ballot};
    let accept = Accept { inst: n(1), bal: Ballot { n: 0, node: n(1) }, prepared: true };
    let log = vec![
        Record::Opened { balance: Amount(0) },
        Record::Paxos(PaxosRecord::Accept { spec: spec(), acceptors: ACCEPTORS, accept }),
    ];
    let node = Machine::<PaxosCommit>::recover(n(2), &log, &mut Vec::new());
    assert!(node.waiting().is_empty(), "{:?}", node.waiting());
    // Nor does it say it is voting: it knows what a node that never heard of it knows.
    let fresh = Machine::<PaxosCommit>::recover(n(2), &log[..1], &mut Vec::new());
    assert_eq!(node.state(TX), fresh.state(TX));
}
