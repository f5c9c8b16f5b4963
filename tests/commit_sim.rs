//! The three commit protocols' pure machines (`TxNode` with `Protocol::{TwoPc, ThreePc,
//! Paxos}`) under a seeded schedule of transfers, deliveries in random order (delay),
//! duplicated messages, crashes now and at every crash point, restarts from the log,
//! partitions and pauses, and timeouts. Channels are FIFO and survive crashes, as in a
//! script.
//!
//! After every step: no transfer committed at one node and aborted at another, and no
//! decision reported both ways; when every node is up, money is conserved. At the end
//! every fault heals, and deliveries and timeouts run until nothing moves: then nothing
//! is undecided anywhere, and the money adds up exactly.
//!
//! Timeouts: Paxos Commit and two-phase commit are safe whenever a timeout fires, so
//! they fire at random. Three-phase commit assumes a perfect failure detector, so its
//! timeouts fire only when nothing is deliverable (a node waits only on one that is down,
//! paused or cut off), as a script's logical timeouts do. Without
//! partitions and pauses it must never split; with them the simulation must find a split
//! (which proves the checker sees one).
//!
//! `COMMIT_SEEDS=100000 cargo test --release --test commit_sim` runs more (10,000 per
//! protocol and mode by default); `COMMIT_SEED=n` replays one, with its steps printed.

mod util;

use bank::ids::{Amount, NodeId, TxnId};
use bank::protocol::two_pc::{
    AbortReason, CrashPoint, Outcome, PartState, TxEffect, TxMsg, TxNode, TxRecord, TxSpec,
};
use bank::rng::Rng;
use bank::wal::MemoryWal;
use bank::wire::{Protocol, TxState};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

struct SimNode {
    machine: Option<TxNode>,
    wal: MemoryWal<TxRecord>,
    armed: Option<CrashPoint>,
    paused: bool,
}

struct World {
    rng: Rng,
    protocol: Protocol,
    /// Partitions and pauses happen.
    cuts: bool,
    nodes: Vec<SimNode>,
    channels: HashMap<(NodeId, NodeId), VecDeque<TxMsg>>,
    /// One side of the partition, if any: channels between it and the rest are cut.
    cut: BTreeSet<NodeId>,
    specs: BTreeMap<TxnId, TxSpec>,
    reported: HashMap<TxnId, Outcome>,
    /// The node that stays down when the rest heals, if any.
    left_down: Option<NodeId>,
    /// (node, transaction) whose leg has voted YES.
    voted_yes: BTreeSet<(NodeId, TxnId)>,
    total: u64,
    next_tx: u64,
    crashed_at: BTreeSet<&'static str>,
    log: Vec<String>,
    verbose: bool,
}

/// How many times one node may time out on one transaction while the healed system
/// settles (the master's rule in a script).
const TIMEOUTS: u32 = 3;

fn idx(id: NodeId) -> usize {
    id.0 as usize
}

impl World {
    fn new(seed: u64, protocol: Protocol, cuts: bool, verbose: bool) -> World {
        let mut rng = Rng::new(seed);
        let n = 3 + rng.below(3);
        let mut nodes = Vec::new();
        let mut total = 0;
        for i in 0..n {
            let balance = Amount(rng.below(100) as u64);
            total += balance.0;
            let mut wal = MemoryWal::new();
            wal.append(&TxRecord::Opened { balance }).unwrap();
            wal.commit();
            let machine = Some(TxNode::new(NodeId(i as u32), balance));
            nodes.push(SimNode { machine, wal, armed: None, paused: false });
        }
        World {
            rng,
            protocol,
            cuts,
            nodes,
            channels: HashMap::new(),
            cut: BTreeSet::new(),
            specs: BTreeMap::new(),
            reported: HashMap::new(),
            voted_yes: BTreeSet::new(),
            left_down: None,
            total,
            next_tx: 1,
            crashed_at: BTreeSet::new(),
            log: Vec::new(),
            verbose,
        }
    }

    fn note(&mut self, what: String) {
        if self.verbose {
            eprintln!("{what}");
        }
        self.log.push(what);
        if self.log.len() > 40 {
            self.log.remove(0);
        }
    }

    fn up(&self, id: NodeId) -> bool {
        self.nodes[idx(id)].machine.is_some()
    }

    /// Up, not paused: it takes steps.
    fn runs(&self, id: NodeId) -> bool {
        self.up(id) && !self.nodes[idx(id)].paused
    }

    fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        self.cut.contains(&a) != self.cut.contains(&b)
    }

    /// The nodes `n` can reach now.
    fn reach(&self, n: NodeId) -> Vec<NodeId> {
        (0..self.nodes.len() as u32)
            .map(NodeId)
            .filter(|&m| m != n && self.runs(m) && !self.is_cut(n, m))
            .collect()
    }

    fn execute(&mut self, node: NodeId, effects: Vec<TxEffect>) -> Result<(), String> {
        for e in effects {
            match e {
                TxEffect::Log { rec, force } => {
                    let n = &mut self.nodes[idx(node)];
                    n.wal.append(&rec).map_err(|e| e.to_string())?;
                    if force {
                        n.wal.commit();
                    }
                }
                TxEffect::Send { to, msg } => {
                    self.channels.entry((node, to)).or_default().push_back(msg)
                }
                TxEffect::Point(p) => {
                    if self.nodes[idx(node)].armed == Some(p) {
                        self.crashed_at.insert(p.name());
                        self.note(format!("node {} dies at {}", node.0, p.name()));
                        self.crash(node);
                        return Ok(());
                    }
                }
                TxEffect::Decided { tx, outcome } => {
                    let committed = |o: Outcome| o == Outcome::Committed;
                    if let Some(prev) = self.reported.insert(tx, outcome) {
                        if committed(prev) != committed(outcome) {
                            return Err(format!("split: {tx} reported {prev:?}, then {outcome:?}"));
                        }
                    }
                }
                // A credit reached a leg that aborted: its coordinator committed.
                TxEffect::Dropped { tx, amount } => {
                    return Err(format!("split: node {} dropped {tx}'s credit of {amount}", node.0))
                }
            }
        }
        Ok(())
    }

    fn crash(&mut self, node: NodeId) {
        let reached = self.rng.below(80);
        let n = &mut self.nodes[idx(node)];
        n.machine = None;
        n.armed = None;
        n.paused = false;
        n.wal.crash(reached);
    }

    fn restart(&mut self, node: NodeId) -> Result<(), String> {
        let records = self.nodes[idx(node)].wal.records();
        let mut out = Vec::new();
        let mut m = TxNode::recover(node, &records, &mut out);
        m.set_relay(false);
        self.nodes[idx(node)].machine = Some(m);
        self.note(format!("node {} restarts", node.0));
        self.execute(node, out)
    }

    fn pick(&mut self) -> NodeId {
        NodeId(self.rng.below(self.nodes.len()) as u32)
    }

    fn start(&mut self) -> Result<(), String> {
        let (from, to) = (self.pick(), self.pick());
        let third = self.rng.below(3) == 0;
        let coord = if third { self.pick() } else { from };
        if from == to || !self.runs(coord) {
            return Ok(());
        }
        let witness = (0..self.nodes.len() as u32)
            .map(NodeId)
            .find(|&n| n != from && n != to)
            .expect("three nodes at least");
        let acceptors =
            if coord != from && coord != to { [from, to, coord] } else { [from, to, witness] };
        let amount = Amount(self.rng.below(60) as u64);
        let spec = TxSpec { tx: TxnId(self.next_tx), from, to, amount, coord };
        self.next_tx += 1;
        self.specs.insert(spec.tx, spec);
        self.note(format!("start {spec:?}"));
        let mut out = Vec::new();
        let m = self.nodes[idx(coord)].machine.as_mut().unwrap();
        m.on_start_with(spec, self.protocol, acceptors, &mut out);
        self.execute(coord, out)
    }

    fn deliverable(&self) -> Vec<(NodeId, NodeId)> {
        let mut v: Vec<_> = self
            .channels
            .iter()
            .filter(|(c, q)| !q.is_empty() && self.runs(c.1) && !self.is_cut(c.0, c.1))
            .map(|(c, _)| *c)
            .collect();
        v.sort();
        v
    }

    fn deliver(&mut self) -> Result<bool, String> {
        let open = self.deliverable();
        if open.is_empty() {
            return Ok(false);
        }
        let c = open[self.rng.below(open.len())];
        let msg = self.channels.get_mut(&c).unwrap().pop_front().unwrap();
        if self.verbose {
            self.note(format!("{} -> {}: {msg:?}", c.0 .0, c.1 .0));
        }
        let mut out = Vec::new();
        self.nodes[idx(c.1)].machine.as_mut().unwrap().on_message(c.0, msg, &mut out);
        self.execute(c.1, out)?;
        Ok(true)
    }

    /// A timeout at `node` for one of the transactions it waits on.
    fn timeout_at(&mut self, node: NodeId, tx: TxnId) -> Result<bool, String> {
        let reach = self.reach(node);
        let mut out = Vec::new();
        let m = self.nodes[idx(node)].machine.as_mut().unwrap();
        m.on_timeout_reach(tx, AbortReason::NodeDown, &reach, &mut out);
        let moved = !out.is_empty();
        self.note(format!("timeout at {} for {tx} (reach {reach:?})", node.0));
        self.execute(node, out)?;
        Ok(moved)
    }

    /// Who may time out now: anyone waiting (at random), for three-phase commit only when
    /// nothing is deliverable (its perfect failure detector).
    fn timeout(&mut self) -> Result<bool, String> {
        let quiet = self.deliverable().is_empty();
        if self.protocol == Protocol::ThreePc && !quiet {
            return Ok(false);
        }
        let mut cands = Vec::new();
        for i in 0..self.nodes.len() {
            let n = NodeId(i as u32);
            if !self.runs(n) {
                continue;
            }
            for tx in self.nodes[i].machine.as_ref().unwrap().waiting() {
                let coord = self.specs.get(&tx).is_some_and(|s| s.coord == n);
                cands.push((!coord, tx, n));
            }
        }
        if cands.is_empty() {
            return Ok(false);
        }
        cands.sort();
        let (_, tx, n) = cands[self.rng.below(cands.len())];
        self.timeout_at(n, tx)
    }

    fn step(&mut self) -> Result<(), String> {
        let roll = self.rng.below(100);
        match roll {
            0..=14 => self.start(),
            15..=64 => self.deliver().map(|_| ()),
            65..=69 => {
                // A duplicated message (the network delivers it twice).
                let open = self.deliverable();
                if let Some(&c) = open.get(self.rng.below(open.len().max(1))) {
                    let q = self.channels.get_mut(&c).unwrap();
                    let head = *q.front().unwrap();
                    q.push_front(head);
                }
                Ok(())
            }
            70..=72 => {
                let n = self.pick();
                if self.up(n) {
                    self.note(format!("crash {}", n.0));
                    self.crash(n);
                }
                Ok(())
            }
            73..=76 => {
                let n = self.pick();
                let p = CrashPoint::EVERY[self.rng.below(CrashPoint::EVERY.len())];
                if self.up(n) {
                    self.nodes[idx(n)].armed = Some(p);
                }
                Ok(())
            }
            77..=82 => {
                let n = self.pick();
                if self.up(n) {
                    Ok(())
                } else {
                    self.restart(n)
                }
            }
            83..=85 if self.cuts => {
                if self.cut.is_empty() {
                    let n = self.nodes.len();
                    let side: BTreeSet<NodeId> =
                        (0..n as u32).map(NodeId).filter(|_| self.rng.below(2) == 0).collect();
                    self.note(format!("partition {side:?}"));
                    self.cut = side;
                } else {
                    self.note("heal".into());
                    self.cut.clear();
                }
                Ok(())
            }
            86..=87 if self.cuts => {
                let n = self.pick();
                if self.up(n) {
                    let p = &mut self.nodes[idx(n)].paused;
                    *p = !*p;
                    let now = *p;
                    self.note(format!("{} {}", if now { "pause" } else { "resume" }, n.0));
                }
                Ok(())
            }
            _ => self.timeout().map(|_| ()),
        }
    }

    /// No transfer committed at one node and aborted at another (what `Check` calls a
    /// split), and, with every node up, the money adds up.
    fn check(&mut self) -> Result<(), String> {
        let mut ends: HashMap<TxnId, (TxState, NodeId)> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(m) = &n.machine else { continue };
            for (tx, st) in m.ended() {
                if let Some((other, at)) = ends.insert(tx, (st, NodeId(i as u32))) {
                    if other != st {
                        return Err(format!(
                            "split: {tx} {} at node {}, {} at node {i}",
                            other.word(),
                            at.0,
                            st.word()
                        ));
                    }
                }
            }
        }
        // A YES is never taken back: a leg that voted YES aborts only once some node
        // decided the abort.
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(m) = &n.machine else { continue };
            let me = NodeId(i as u32);
            for tx in m.in_doubt() {
                self.voted_yes.insert((me, tx));
            }
            for &(at, tx) in self.voted_yes.iter().filter(|v| v.0 == me) {
                let aborted = matches!(self.reported.get(&tx), Some(Outcome::Aborted(_)));
                if m.part(tx) == Some(PartState::Aborted) && !aborted {
                    return Err(format!("{tx}: node {} took its YES back", at.0));
                }
            }
        }
        if self.nodes.iter().all(|n| n.machine.is_some()) {
            self.money()?;
        }
        Ok(())
    }

    fn money(&self) -> Result<(), String> {
        let machines: Vec<&TxNode> =
            self.nodes.iter().map(|n| n.machine.as_ref().unwrap()).collect();
        let mut held: u64 = machines.iter().map(|m| m.balance().0).sum();
        let mut counted = BTreeSet::new();
        for ((_, to), q) in &self.channels {
            for m in q {
                if let TxMsg::Credit { tx, amount } = m {
                    if !machines[idx(*to)].applied(*tx) && counted.insert(*tx) {
                        held += amount.0;
                    }
                }
            }
        }
        if held != self.total {
            return Err(format!("money: {held} held, {} created", self.total));
        }
        Ok(())
    }

    /// Every fault heals; then, as the master drives a transfer in a script: deliver
    /// while anything is deliverable; when nothing is, the first node still waiting
    /// (coordinators first, then by transaction and id) times out, each at most
    /// `TIMEOUTS` times per transaction. When no one is left to time out, nothing may be
    /// undecided.
    fn heal(&mut self) -> Result<(), String> {
        self.cut.clear();
        for n in &mut self.nodes {
            n.paused = false;
            n.armed = None;
        }
        for i in 0..self.nodes.len() {
            if !self.up(NodeId(i as u32)) && self.left_down != Some(NodeId(i as u32)) {
                self.restart(NodeId(i as u32))?;
            }
        }
        if let Some(n) = self.left_down.filter(|&n| self.up(n)) {
            self.note(format!("crash {} for good", n.0));
            self.crash(n);
        }
        let mut count: HashMap<(TxnId, NodeId), u32> = HashMap::new();
        loop {
            if self.deliver()? {
                self.check()?;
                continue;
            }
            let mut waiting: Vec<(bool, TxnId, NodeId)> = (0..self.nodes.len())
                .filter_map(|i| self.nodes[i].machine.as_ref().map(|m| (i, m)))
                .flat_map(|(i, m)| m.waiting().into_iter().map(move |tx| (NodeId(i as u32), tx)))
                .filter(|&(n, tx)| count.get(&(tx, n)).copied().unwrap_or(0) < TIMEOUTS)
                .map(|(n, tx)| (self.specs.get(&tx).is_none_or(|s| s.coord != n), tx, n))
                .collect();
            waiting.sort();
            let Some(&(_, tx, n)) = waiting.first() else {
                return self.settled();
            };
            *count.entry((tx, n)).or_default() += 1;
            self.timeout_at(n, tx)?;
            self.check()?;
        }
    }

    /// After healing: nothing in doubt, every transfer decided alike everywhere and, with
    /// every node up, ended.
    /// With a node left down: nothing in doubt whose two participants are up (Paxos
    /// Commit's liveness: both participants are acceptors, so two acceptors are up too).
    fn settled(&self) -> Result<(), String> {
        if self.left_down.is_none() {
            self.money()?;
            // And every transfer has ended: no coordinator still waits for an ack, no
            // leader for its ballot (a live `Live off` waits for exactly this).
            for (i, n) in self.nodes.iter().enumerate() {
                let waiting = n.machine.as_ref().map_or(Vec::new(), |m| m.waiting());
                if let Some(tx) = waiting.first() {
                    return Err(format!("{tx} never ends at node {i}: it waits after healing"));
                }
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(m) = &n.machine else { continue };
            for tx in m.in_doubt() {
                let spec = self.specs[&tx];
                if self.up(spec.from) && self.up(spec.to) {
                    return Err(format!("{tx} is still in doubt at node {i} after healing"));
                }
            }
        }
        Ok(())
    }
}

/// Runs one seed; `Err` is a violation, with the last steps.
fn run(seed: u64, protocol: Protocol, mode: Mode, verbose: bool) -> Result<World, String> {
    let mut w = World::new(seed, protocol, mode == Mode::Cuts, verbose);
    if mode == Mode::OneDown {
        w.left_down = Some(w.pick());
    }
    for _ in 0..150 {
        let r = w.step().and_then(|()| w.check());
        if let Err(e) = r {
            return Err(format!("{e}\nlast steps:\n{}", w.log.join("\n")));
        }
    }
    w.heal().map_err(|e| format!("{e}\nlast steps:\n{}", w.log.join("\n")))?;
    Ok(w)
}

/// The faults of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Crashes (now and at crash points), duplicates, delays; everything heals.
    Crashes,
    /// The same with partitions and pauses.
    Cuts,
    /// Crashes, and one node stays down when the rest heals.
    OneDown,
}

/// What a sweep of seeds found.
struct Sweep {
    seeds: usize,
    /// Seeds whose first violation was a split decision.
    splits: Vec<u64>,
    /// Every other violation (money, a YES taken back, undecided after healing, a panic).
    others: Vec<(u64, String)>,
    points: BTreeSet<&'static str>,
}

fn sweep(protocol: Protocol, mode: Mode) -> Sweep {
    let seeds = util::seeds("COMMIT_SEED", "COMMIT_SEEDS", 10_000);
    let verbose = seeds.len() == 1;
    let mut transfers = 0;
    let mut found = Sweep {
        seeds: seeds.len(),
        splits: Vec::new(),
        others: Vec::new(),
        points: BTreeSet::new(),
    };
    let mut first_split = None;
    for &seed in &seeds {
        let outcome = std::panic::catch_unwind(|| run(seed, protocol, mode, verbose));
        let outcome = outcome.unwrap_or_else(|p| {
            let what = p.downcast_ref::<&str>().map(|s| s.to_string());
            let what = what.or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            Err(format!("a machine panicked: {what}"))
        });
        match outcome {
            Ok(w) => {
                transfers += w.specs.len();
                found.points.extend(w.crashed_at);
            }
            Err(e) if e.starts_with("split") => {
                found.splits.push(seed);
                first_split.get_or_insert((seed, e));
            }
            Err(e) => found.others.push((seed, e)),
        }
    }
    let what = match mode {
        Mode::Crashes => "crashes only",
        Mode::Cuts => "with partitions and pauses",
        Mode::OneDown => "one node left down",
    };
    println!(
        "{} {what}: {} seeds, {transfers} transfers, {} splits, {} other violations, crash points {:?}",
        protocol.word(),
        seeds.len(),
        found.splits.len(),
        found.others.len(),
        found.points
    );
    if let Some((seed, e)) = &first_split {
        println!("first split (COMMIT_SEED={seed}): {e}");
    }
    if let Some((seed, e)) = found.others.first() {
        println!("first other violation (COMMIT_SEED={seed}): {e}");
    }
    found
}

/// The crash points a protocol's roles reach.
fn points_of(protocol: Protocol) -> Vec<&'static str> {
    let all = CrashPoint::EVERY.iter().map(|p| p.name());
    match protocol {
        Protocol::TwoPc => CrashPoint::ALL.iter().map(|p| p.name()).collect(),
        Protocol::ThreePc => all.filter(|&p| p != "after-accept").collect(),
        Protocol::Paxos => vec![
            "before-vote",
            "after-vote",
            "after-accept",
            "before-decision",
            "after-decision",
            "mid-commit",
            "before-ack",
        ],
    }
}

fn assert_safe(protocol: Protocol, mode: Mode) {
    let found = sweep(protocol, mode);
    assert_eq!(
        found.splits.len() + found.others.len(),
        0,
        "{} must never fail ({} seeds)",
        protocol.word(),
        found.seeds
    );
    if found.seeds >= 1000 {
        for p in points_of(protocol) {
            assert!(found.points.contains(p), "{}: no run crashed at {p}", protocol.word());
        }
    }
}

#[test]
fn two_phase_commit_never_splits() {
    assert_safe(Protocol::TwoPc, Mode::Crashes);
    assert_safe(Protocol::TwoPc, Mode::Cuts);
}

#[test]
fn paxos_commit_never_splits_and_always_ends() {
    assert_safe(Protocol::Paxos, Mode::Crashes);
    assert_safe(Protocol::Paxos, Mode::Cuts);
    assert_safe(Protocol::Paxos, Mode::OneDown);
}

#[test]
fn three_phase_commit_is_safe_with_a_perfect_failure_detector() {
    assert_safe(Protocol::ThreePc, Mode::Crashes);
}

// The demonstration of why Paxos Commit exists: under partitions and pauses three-phase
// commit splits, and the simulation must see it do so; nothing else may go wrong.
#[test]
fn three_phase_commit_splits_under_partitions_and_pauses() {
    let found = sweep(Protocol::ThreePc, Mode::Cuts);
    assert!(
        found.others.is_empty(),
        "3pc: violations other than a split: {:?}",
        found.others.first()
    );
    if std::env::var("COMMIT_SEED").is_err() {
        assert!(
            !found.splits.is_empty(),
            "no split in {} seeds: the checker cannot see one",
            found.seeds
        );
    }
}

// The contrast that proves the liveness check can fail: two-phase commit blocks when a
// coordinator stays down after its participants voted YES.
#[test]
fn two_phase_commit_blocks_when_a_coordinator_stays_down() {
    let found = sweep(Protocol::TwoPc, Mode::OneDown);
    let blocked = found.others.iter().filter(|(_, e)| e.contains("still in doubt")).count();
    assert_eq!(
        blocked,
        found.others.len(),
        "2pc: violations other than blocking: {:?}",
        found.others.first()
    );
    assert!(found.splits.is_empty(), "2pc split");
    if std::env::var("COMMIT_SEED").is_err() {
        assert!(
            blocked > 0,
            "2pc never blocked in {} seeds: the liveness check sees nothing",
            found.seeds
        );
    }
}
