//! Three-phase commit's and Paxos Commit's rules, one test each, on the pure machines
//! (`bank::protocol::commit::TxNode`) driven by hand through a tiny FIFO network: the
//! forced records before the messages they cover, the textbook's missing-ack rule, the
//! election, TR1–TR4, recovery that never decides alone, Paxos Commit's forced accepts,
//! its unique ballots and its commit rule. The layout is B of the notes: node 1 pays
//! node 2, node 3 coordinates (and is Paxos Commit's third acceptor).

use bank::ids::{Amount, NodeId, TxnId};
use bank::protocol::commit::TxNode;
use bank::protocol::effect::TxEffect;
use bank::protocol::record::TxRecord;
use bank::wire::{AbortReason, PaxosMsg, Protocol, ThreeMsg, TxMsg, TxOutcome, TxSpec};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

fn n(i: u32) -> NodeId {
    NodeId(i)
}

const SPEC: TxSpec =
    TxSpec { tx: TxnId(1), from: NodeId(1), to: NodeId(2), amount: Amount(30), coord: NodeId(3) };
const ACCEPTORS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

/// Three nodes, FIFO channels, every record each node logged (to recover from).
struct Net {
    nodes: BTreeMap<NodeId, TxNode>,
    logs: BTreeMap<NodeId, Vec<TxRecord>>,
    chans: BTreeMap<(NodeId, NodeId), VecDeque<TxMsg>>,
    decided: Vec<(NodeId, TxOutcome)>,
    /// Per node, every effect in order (for the forced-before-send rules).
    effects: BTreeMap<NodeId, Vec<TxEffect>>,
}

impl Net {
    fn new() -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            logs: BTreeMap::new(),
            chans: BTreeMap::new(),
            decided: Vec::new(),
            effects: BTreeMap::new(),
        };
        for (i, balance) in [(1, 100), (2, 0), (3, 0)] {
            net.nodes.insert(n(i), TxNode::new(n(i), Amount(balance)));
            net.logs.insert(n(i), vec![TxRecord::Opened { balance: Amount(balance) }]);
        }
        net
    }

    fn apply(&mut self, at: NodeId, out: Vec<TxEffect>) {
        for e in &out {
            match e {
                TxEffect::Send { to, msg } => {
                    self.chans.entry((at, *to)).or_default().push_back(*msg)
                }
                TxEffect::Log { rec, .. } => self.logs.get_mut(&at).unwrap().push(*rec),
                TxEffect::Decided { outcome, .. } => self.decided.push((at, *outcome)),
                _ => {}
            }
        }
        self.effects.entry(at).or_default().extend(out);
    }

    fn start(&mut self, protocol: Protocol) {
        let mut out = Vec::new();
        self.node(3).on_start_with(SPEC, protocol, ACCEPTORS, &mut out);
        self.apply(n(3), out);
    }

    fn node(&mut self, i: u32) -> &mut TxNode {
        self.nodes.get_mut(&n(i)).expect("a node")
    }

    /// Delivers the head of channel `from -> to`; false if it is empty.
    fn deliver(&mut self, from: u32, to: u32) -> bool {
        let Some(msg) = self.chans.get_mut(&(n(from), n(to))).and_then(|q| q.pop_front()) else {
            return false;
        };
        let mut out = Vec::new();
        self.node(to).on_message(n(from), msg, &mut out);
        self.apply(n(to), out);
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
        let node = TxNode::recover(n(i), &self.logs[&n(i)], &mut out);
        self.nodes.insert(n(i), node);
        self.apply(n(i), out);
    }

    fn timeout(&mut self, i: u32, reach: &[u32]) {
        let reach: Vec<NodeId> = reach.iter().map(|&r| n(r)).collect();
        let mut out = Vec::new();
        self.node(i).on_timeout_reach(SPEC.tx, AbortReason::NodeDown, &reach, &mut out);
        self.apply(n(i), out);
    }

    fn status(&mut self, i: u32) -> &'static str {
        self.node(i).status(SPEC.tx)
    }

    fn sent(&self, from: u32, to: u32) -> Vec<TxMsg> {
        self.chans.get(&(n(from), n(to))).map(|q| q.iter().copied().collect()).unwrap_or_default()
    }

    /// Every outcome reported, as a set: one element is agreement.
    fn outcomes(&self) -> BTreeSet<bool> {
        self.decided.iter().map(|(_, o)| matches!(o, TxOutcome::Committed)).collect()
    }
}

/// The votes are in: `Prepare` and both YES votes delivered, nothing of phase two.
fn votes_in(net: &mut Net, protocol: Protocol) {
    net.start(protocol);
    net.deliver(3, 1);
    net.deliver(3, 2);
    net.deliver(1, 3);
    net.deliver(2, 3);
}

/// Index of the first effect at `node` matching `f`.
fn first(net: &Net, node: u32, f: impl Fn(&TxEffect) -> bool) -> usize {
    net.effects[&n(node)].iter().position(f).expect("the effect happened")
}

fn is_pre(m: &TxMsg) -> bool {
    matches!(m, TxMsg::ThreePc(ThreeMsg::PreCommit { .. }))
}

// 3PC, step 2: the coordinator forces PreCommitting before any PreCommit leaves, and a
// participant forces PreCommitted before it acks.
#[test]
fn three_pc_forces_each_pre_commit_before_the_message_it_covers() {
    let mut net = Net::new();
    votes_in(&mut net, Protocol::ThreePc);
    let send = first(&net, 3, |e| matches!(e, TxEffect::Send { msg, .. } if is_pre(msg)));
    let log =
        first(&net, 3, |e| matches!(e, TxEffect::Log { force: true, rec: TxRecord::ThreePc(_) }));
    assert!(log < send, "PreCommitting forced before PreCommit");
    net.deliver(3, 1);
    let ack = first(&net, 1, |e| {
        matches!(e, TxEffect::Send { msg: TxMsg::ThreePc(ThreeMsg::PreCommitAck { .. }), .. })
    });
    let log =
        first(&net, 1, |e| matches!(e, TxEffect::Log { force: true, rec: TxRecord::ThreePc(_) }));
    assert!(log < ack, "PreCommitted forced before the ack");
    assert_eq!(net.status(1), "PRECOMMITTED");
}

// The textbook rule: a coordinator that misses an ack counts the participant as failed
// and commits.
#[test]
fn three_pc_coordinator_commits_when_an_ack_is_missing() {
    let mut net = Net::new();
    votes_in(&mut net, Protocol::ThreePc);
    net.deliver(3, 1);
    net.deliver(1, 3); // node 1's ack; node 2's PreCommit never arrives
    net.timeout(3, &[1]);
    assert_eq!(net.status(3), "COMMITTED");
    assert_eq!(net.outcomes(), BTreeSet::from([true]));
}

// Election: only the lowest participant a node can reach leads; the other asks.
#[test]
fn three_pc_the_lowest_reachable_participant_leads() {
    let mut net = Net::new();
    votes_in(&mut net, Protocol::ThreePc);
    net.crash(3);
    net.timeout(2, &[1]);
    assert_eq!(net.sent(2, 1), vec![TxMsg::ThreePc(ThreeMsg::DecisionReq { tx: SPEC.tx })]);
    assert!(
        net.sent(2, 3).is_empty(),
        "nothing goes to a node it cannot reach: {:?}",
        net.sent(2, 3)
    );
    net.timeout(1, &[2]);
    assert!(matches!(net.sent(1, 2)[..], [TxMsg::ThreePc(ThreeMsg::StateReq { .. })]));
}

// TR3: every state collected is uncertain, so the leader aborts, and tells the others.
#[test]
fn three_pc_all_uncertain_aborts() {
    let mut net = Net::new();
    votes_in(&mut net, Protocol::ThreePc);
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
    let mut net = Net::new();
    votes_in(&mut net, Protocol::ThreePc);
    net.deliver(3, 1); // PreCommit reaches node 1 only
    net.crash(3);
    net.timeout(1, &[2]);
    net.settle(&[3]);
    assert!(net.effects[&n(2)]
        .iter()
        .any(|e| matches!(e, TxEffect::Log { force: true, rec: TxRecord::ThreePc(_) })));
    assert_eq!((net.status(1), net.status(2)), ("COMMITTED", "COMMITTED"));
    assert_eq!(net.node(2).balance(), Amount(30));
}

// TR1 and TR2 through a leader that learnt the outcome: a node that knows it says it.
#[test]
fn three_pc_a_known_outcome_wins_the_termination() {
    for commit in [true, false] {
        let mut net = Net::new();
        votes_in(&mut net, Protocol::ThreePc);
        // Node 2 learns the outcome first (a DoCommit or an abort), then the coordinator dies.
        let msg = if commit {
            TxMsg::ThreePc(ThreeMsg::DoCommit { tx: SPEC.tx })
        } else {
            TxMsg::Decide { tx: SPEC.tx, commit: false }
        };
        let mut out = Vec::new();
        net.node(2).on_message(n(3), msg, &mut out);
        net.apply(n(2), out);
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
    let mut net = Net::new();
    votes_in(&mut net, Protocol::ThreePc);
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
    let mut net = Net::new();
    net.start(Protocol::Paxos);
    net.deliver(3, 1);
    let phase2b = first(&net, 1, |e| {
        matches!(e, TxEffect::Send { msg: TxMsg::Paxos(PaxosMsg::Phase2b { .. }), .. })
    });
    let forced = first(&net, 1, |e| matches!(e, TxEffect::Log { force: true, .. }));
    assert!(forced < phase2b);
}

// Paxos Commit decides commit iff both instances chose prepared; a NO aborts.
#[test]
fn paxos_commits_iff_both_votes_are_prepared() {
    for (balance, commit) in [(100, true), (10, false)] {
        let mut net = Net::new();
        net.nodes.insert(n(1), TxNode::new(n(1), Amount(balance)));
        net.logs.insert(n(1), vec![TxRecord::Opened { balance: Amount(balance) }]);
        net.start(Protocol::Paxos);
        net.settle(&[]);
        assert_eq!(net.outcomes(), BTreeSet::from([commit]), "balance {balance}");
        let want = if commit { "COMMITTED" } else { "ABORTED" };
        assert_eq!((net.status(1), net.status(2)), (want, want));
        // Every ack is in: the coordinator is done, knows its decision, and waits no more.
        let coord = net.node(3);
        assert!(coord.finished(SPEC.tx), "balance {balance}");
        assert!(coord.waiting().is_empty(), "balance {balance}: {:?}", coord.waiting());
        let outcome = coord.decision(SPEC.tx).map(|o| matches!(o, TxOutcome::Committed));
        assert_eq!(outcome, Some(commit), "balance {balance}");
    }
}

// Three-phase commit without faults: everyone commits, and the coordinator knows its
// decision, is done, and waits on nothing.
#[test]
fn three_pc_without_faults_commits_and_ends() {
    let mut net = Net::new();
    net.start(Protocol::ThreePc);
    net.settle(&[]);
    assert_eq!(net.outcomes(), BTreeSet::from([true]));
    assert_eq!(
        (net.status(1), net.status(2), net.status(3)),
        ("COMMITTED", "COMMITTED", "COMMITTED")
    );
    let coord = net.node(3);
    assert_eq!(coord.decision(SPEC.tx), Some(TxOutcome::Committed));
    assert!(coord.finished(SPEC.tx));
    assert!(coord.waiting().is_empty(), "{:?}", coord.waiting());
}

// Paxos Commit stays live without its coordinator: both participants and two acceptors
// (their own) are enough, and a leader's ballot carries its own id, so two leaders never
// share one.
#[test]
fn paxos_finishes_without_the_coordinator_on_unique_ballots() {
    let mut net = Net::new();
    votes_in(&mut net, Protocol::Paxos);
    net.crash(3);
    net.timeout(1, &[2]);
    net.timeout(2, &[1]);
    for i in [1, 2] {
        let phase1a: Vec<NodeId> = net
            .sent(i, 3 - i)
            .into_iter()
            .filter_map(|m| match m {
                TxMsg::Paxos(PaxosMsg::Phase1a { bal, .. }) => Some(bal.node),
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
    use bank::protocol::record::PaxosRecord;
    let decision =
        TxRecord::Paxos(PaxosRecord::Decision { spec: SPEC, acceptors: ACCEPTORS, commit: true });
    let log = |balance| vec![TxRecord::Opened { balance: Amount(balance) }, decision];
    let mut out = Vec::new();
    let coord = TxNode::recover(n(3), &log(0), &mut out);
    assert_eq!(coord.waiting(), [TxnId(1)], "the coordinator waits for the acks");
    let acceptor = TxNode::recover(n(1), &log(100), &mut out);
    assert!(acceptor.waiting().is_empty(), "node 1 is no coordinator: {:?}", acceptor.waiting());
    // Once every ack came in (the End record), the coordinator waits no more.
    let mut ended = log(0);
    ended.push(TxRecord::End { tx: TxnId(1) });
    let decided = |out: &[TxEffect]| out.iter().any(|e| matches!(e, TxEffect::Decided { .. }));
    assert!(decided(&out), "a coordinator that logged its decision reports it again");
    out.clear();
    let done = TxNode::recover(n(3), &ended, &mut out);
    assert!(done.waiting().is_empty(), "an ended transfer: {:?}", done.waiting());
    assert!(!decided(&out), "an ended transfer is not reported again: {out:?}");
}

// Node 2 as an acceptor only (it logged an accept of node 1's vote, and never voted
// itself): after a restart it leads no ballot, is in doubt about nothing, and so waits on
// nothing; the others' timeouts lead the ballots.
#[test]
fn a_recovered_acceptor_that_leads_nothing_waits_on_nothing() {
    use bank::protocol::record::PaxosRecord;
    use bank::wire::{Accept, Ballot};
    let accept = Accept { inst: n(1), bal: Ballot { n: 0, node: n(1) }, prepared: true };
    let log = vec![
        TxRecord::Opened { balance: Amount(0) },
        TxRecord::Paxos(PaxosRecord::Accept { spec: SPEC, acceptors: ACCEPTORS, accept }),
    ];
    let node = TxNode::recover(n(2), &log, &mut Vec::new());
    assert!(node.waiting().is_empty(), "{:?}", node.waiting());
    // Nor does it say it is voting: it knows what a node that never heard of it knows.
    let fresh = TxNode::recover(n(2), &log[..1], &mut Vec::new());
    assert_eq!(node.state(SPEC.tx), fresh.state(SPEC.tx));
}
