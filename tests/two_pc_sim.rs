//! Seeded randomized simulation of two-phase commit with crashes.
//!
//! Nodes are [`TxNode`] machines with in-memory write-ahead logs ([`MemoryWal`]) joined by
//! FIFO channels that survive crashes (SPEC chapter 5: a message queued to or from a
//! crashed node is still in its channel after `Restart`). A seed picks every step: start
//! a transfer (any coordinator, any amount, participants up or down), deliver a message,
//! crash a node now or arm a crash point of chapter 5, restart a node from its log alone,
//! fire a timeout, duplicate any message, or lose a message that carries no money.
//! A crash keeps what was forced and a random part of what was not (a torn tail).
//!
//! After every step:
//! * money is conserved: balances, plus each committed transfer not yet credited counted
//!   once (in its `Credit` message or, for a crashed debit node, owed by it);
//! * no transaction is applied on one node and aborted on another, and a logged decision
//!   never changes; no node holds more than it owns;
//! * a debit node that is up and has debited has its `Credit` in the channel or delivered.
//!
//! At the end every node restarts, messages are delivered and timeouts fire until nothing
//! moves: then nothing is in doubt, every transfer is applied on both sides or neither, what
//! a coordinator reported as committed is applied, and the money adds up exactly.
//!
//! Live mode (SPEC chapter 7) runs the same machines concurrently: several transactions
//! hold reservations at one node at once, relaying is on, and a crash loses what
//! was in flight to the dead process; on restart the two ends of each channel resync
//! (each says which transactions' money it lacks and the debit side pays again), as the
//! node processes do. The live variant checks the same invariants.
//!
//! `TWO_PC_SEEDS=100000 cargo test --release --test two_pc_sim` runs more seeds;
//! `TWO_PC_SEED=n` replays one.

mod util;

use bank::ids::{Amount, NodeId, TxnId};
use bank::protocol::two_pc::{
    AbortReason, CrashPoint, Outcome, TxEffect, TxMsg, TxNode, TxRecord, TxSpec,
};
use bank::rng::Rng;
use bank::wal::MemoryWal;
use std::collections::{BTreeMap, HashMap, VecDeque};

struct SimNode {
    id: NodeId,
    machine: Option<TxNode>,
    wal: MemoryWal<TxRecord>,
    armed: Option<CrashPoint>,
}

struct World {
    rng: Rng,
    /// Live mode: relaying, and crashes that lose what was in flight.
    live: bool,
    nodes: Vec<SimNode>,
    channels: HashMap<(NodeId, NodeId), VecDeque<TxMsg>>,
    specs: BTreeMap<TxnId, TxSpec>,
    reported: HashMap<TxnId, Outcome>,
    total: u64,
    next_tx: u64,
    /// Crash points this run actually died at.
    crashed_at: Vec<CrashPoint>,
}

fn idx(id: NodeId) -> usize {
    id.0 as usize
}

impl World {
    fn machine(&self, m: TxNode) -> TxNode {
        let mut m = m;
        if self.live {
            m.set_relay(true);
        }
        m
    }

    fn new(seed: u64, live: bool) -> World {
        let mut rng = Rng::new(seed);
        let n = 2 + rng.below(3);
        let mut nodes = Vec::new();
        let mut total = 0;
        for i in 0..n {
            let balance = Amount(rng.below(100) as u64);
            total += balance.0;
            let mut wal = MemoryWal::new();
            wal.append(&TxRecord::Opened { balance }).unwrap();
            wal.commit();
            nodes.push(SimNode {
                id: NodeId(i as u32),
                machine: Some(TxNode::new(NodeId(i as u32), balance)),
                wal,
                armed: None,
            });
        }
        let mut w = World {
            rng,
            live,
            nodes,
            channels: HashMap::new(),
            specs: BTreeMap::new(),
            reported: HashMap::new(),
            total,
            next_tx: 1,
            crashed_at: Vec::new(),
        };
        for i in 0..w.nodes.len() {
            let m = w.nodes[i].machine.take().expect("just made");
            w.nodes[i].machine = Some(w.machine(m));
        }
        w
    }

    /// Carries out `node`'s effects in order; a crash point that is armed kills it there.
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
                        self.crashed_at.push(p);
                        self.crash(node);
                        return Ok(());
                    }
                }
                TxEffect::Decided { tx, outcome } => {
                    let committed = |o: Outcome| o == Outcome::Committed;
                    if let Some(prev) = self.reported.insert(tx, outcome) {
                        if committed(prev) != committed(outcome) {
                            return Err(format!("{tx} reported {prev:?}, then {outcome:?}"));
                        }
                    }
                }
                TxEffect::Dropped { tx, amount } => {
                    return Err(format!("node {} dropped {tx}'s credit of {amount}", node.0))
                }
            }
        }
        Ok(())
    }

    fn crash(&mut self, node: NodeId) {
        if self.live {
            // What was in flight to the dead process dies with its socket.
            for ((_, to), q) in self.channels.iter_mut() {
                if *to == node {
                    q.clear();
                }
            }
        }
        let reached = self.rng.below(80);
        let n = &mut self.nodes[idx(node)];
        n.machine = None;
        n.armed = None;
        n.wal.crash(reached);
    }

    fn restart(&mut self, node: NodeId) -> Result<(), String> {
        let records = self.nodes[idx(node)].wal.records();
        let mut out = Vec::new();
        let m = TxNode::recover(node, &records, &mut out);
        let m = self.machine(m);
        self.nodes[idx(node)].machine = Some(m);
        self.execute(node, out)?;
        if self.live {
            // The resync with every peer that is up: each side's owed money again.
            for i in 0..self.nodes.len() {
                let peer = NodeId(i as u32);
                if peer == node || !self.up(peer) {
                    continue;
                }
                for (debit, credit) in [(peer, node), (node, peer)] {
                    let owed = self.nodes[idx(credit)].machine.as_ref().unwrap().owed_by(debit);
                    let d = self.nodes[idx(debit)].machine.as_ref().unwrap();
                    let again: Vec<TxMsg> =
                        owed.iter().filter_map(|&tx| d.credit_again(tx)).map(|c| c.1).collect();
                    self.channels.entry((debit, credit)).or_default().extend(again);
                }
            }
        }
        Ok(())
    }

    fn pick(&mut self) -> NodeId {
        NodeId(self.rng.below(self.nodes.len()) as u32)
    }

    fn up(&self, id: NodeId) -> bool {
        self.nodes[idx(id)].machine.is_some()
    }

    fn start(&mut self) -> Result<(), String> {
        let (from, to) = (self.pick(), self.pick());
        let coord = if self.rng.below(2) == 0 { from } else { self.pick() };
        if from == to || !self.up(coord) {
            return Ok(());
        }
        let spec = TxSpec {
            tx: TxnId(self.next_tx),
            from,
            to,
            amount: Amount(self.rng.below(60) as u64),
            coord,
        };
        self.next_tx += 1;
        self.specs.insert(spec.tx, spec);
        let mut out = Vec::new();
        self.nodes[idx(coord)].machine.as_mut().unwrap().on_start(spec, &mut out);
        self.execute(coord, out)
    }

    fn deliverable(&self) -> Vec<(NodeId, NodeId)> {
        let mut v: Vec<_> = self
            .channels
            .iter()
            .filter(|(c, q)| !q.is_empty() && self.up(c.1))
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
        let mut out = Vec::new();
        self.nodes[idx(c.1)].machine.as_mut().unwrap().on_message(c.0, msg, &mut out);
        self.execute(c.1, out)?;
        Ok(true)
    }

    fn timeout(&mut self, node: NodeId) -> Result<bool, String> {
        let Some(m) = self.nodes[idx(node)].machine.as_ref() else { return Ok(false) };
        let waiting = m.waiting();
        if waiting.is_empty() {
            return Ok(false);
        }
        let tx = waiting[self.rng.below(waiting.len())];
        let mut out = Vec::new();
        self.nodes[idx(node)].machine.as_mut().unwrap().on_timeout(
            tx,
            AbortReason::Timeout,
            &mut out,
        );
        let moved = !out.is_empty();
        self.execute(node, out)?;
        Ok(moved)
    }

    fn step(&mut self) -> Result<(), String> {
        let roll = self.rng.below(100);
        match roll {
            0..=19 => self.start(),
            20..=64 => self.deliver().map(|_| ()),
            65..=69 => {
                let n = self.pick();
                if self.up(n) {
                    self.crash(n);
                }
                Ok(())
            }
            70..=77 => {
                let n = self.pick();
                let p = CrashPoint::ALL[self.rng.below(CrashPoint::ALL.len())];
                self.nodes[idx(n)].armed = Some(p);
                Ok(())
            }
            78..=85 => {
                let n = self.pick();
                if self.up(n) {
                    Ok(())
                } else {
                    self.restart(n)
                }
            }
            86..=91 => {
                let n = self.pick();
                self.timeout(n).map(|_| ())
            }
            92..=95 => {
                // Duplicate a message (money too: credits are idempotent).
                let open: Vec<_> =
                    self.channels.iter().filter(|(_, q)| !q.is_empty()).map(|(c, _)| *c).collect();
                if !open.is_empty() {
                    let mut open = open;
                    open.sort();
                    let c = open[self.rng.below(open.len())];
                    let q = self.channels.get_mut(&c).unwrap();
                    let m = q[self.rng.below(q.len())];
                    q.push_back(m);
                }
                Ok(())
            }
            _ => {
                // Lose a message that carries no money.
                let mut open: Vec<_> =
                    self.channels.iter().filter(|(_, q)| !q.is_empty()).map(|(c, _)| *c).collect();
                open.sort();
                if !open.is_empty() {
                    let c = open[self.rng.below(open.len())];
                    let q = self.channels.get_mut(&c).unwrap();
                    let i = self.rng.below(q.len());
                    if q[i].money().is_none() {
                        q.remove(i);
                    }
                }
                Ok(())
            }
        }
    }

    /// Each node's state as its durable log says (what a restart would see), for down nodes,
    /// and its live state for up nodes.
    fn states(&self) -> Vec<TxNode> {
        self.nodes
            .iter()
            .map(|n| match &n.machine {
                Some(m) => m.clone(),
                None => TxNode::recover(n.id, &n.wal.records(), &mut Vec::new()),
            })
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        let states = self.states();
        let mut money = states.iter().map(|s| s.balance().0).sum::<u64>();
        for s in &states {
            if s.held() > s.balance() {
                return Err(format!("node {} holds {} of {}", s.id(), s.held(), s.balance()));
            }
        }
        for (tx, spec) in &self.specs {
            let (d, r) = (&states[idx(spec.from)], &states[idx(spec.to)]);
            let (debited, credited) = (d.applied(*tx), r.applied(*tx));
            if credited && !debited {
                return Err(format!(
                    "{tx} credited at {} but not debited at {}",
                    spec.to, spec.from
                ));
            }
            if debited && !credited {
                money += spec.amount.0; // owed: in a Credit message, or resent on recovery
                let in_channel = self
                    .channels
                    .get(&(spec.from, spec.to))
                    .is_some_and(|q| q.iter().any(|m| m.money().is_some_and(|(t, _)| t == *tx)));
                if self.up(spec.from) && self.up(spec.to) && !in_channel {
                    return Err(format!(
                        "{tx}: {} debited and is up, but no Credit is in flight",
                        spec.from
                    ));
                }
            }
            for s in &states {
                let aborted =
                    matches!(s.part(*tx), Some(bank::protocol::two_pc::PartState::Aborted));
                if aborted && (debited || credited) {
                    return Err(format!("{tx} applied at one node and aborted at node {}", s.id()));
                }
            }
            if let Some(Outcome::Aborted(_)) = self.reported.get(tx) {
                if debited || credited {
                    return Err(format!("{tx} reported aborted but applied"));
                }
            }
        }
        if money != self.total {
            return Err(format!("money: {money} counted, {} created", self.total));
        }
        Ok(())
    }

    /// Heal: restart everyone, then deliver and time out until nothing moves.
    fn quiesce(&mut self) -> Result<(), String> {
        for n in &mut self.nodes {
            n.armed = None;
        }
        for i in 0..self.nodes.len() {
            if !self.up(NodeId(i as u32)) {
                self.restart(NodeId(i as u32))?;
            }
        }
        for round in 0.. {
            if round > 10_000 {
                return Err("no quiescence after 10,000 rounds".into());
            }
            let mut moved = false;
            while self.deliver()? {
                moved = true;
                self.check()?;
            }
            for i in 0..self.nodes.len() {
                moved |= self.timeout(NodeId(i as u32))?;
            }
            if !moved {
                break;
            }
        }
        let states = self.states();
        for s in &states {
            if !s.in_doubt().is_empty() {
                return Err(format!("node {} still in doubt about {:?}", s.id(), s.in_doubt()));
            }
            // Every transfer ended: no coordinator still waits for an ack.
            if !s.waiting().is_empty() {
                return Err(format!("node {} still waits on {:?}", s.id(), s.waiting()));
            }
            if s.held() != Amount::ZERO {
                return Err(format!("node {} still holds {}", s.id(), s.held()));
            }
        }
        for (tx, spec) in &self.specs {
            let (debited, credited) =
                (states[idx(spec.from)].applied(*tx), states[idx(spec.to)].applied(*tx));
            if debited != credited {
                return Err(format!("{tx}: debited {debited}, credited {credited} after healing"));
            }
            if self.reported.get(tx) == Some(&Outcome::Committed) && !debited {
                return Err(format!("{tx} reported committed but not applied"));
            }
        }
        let money: u64 = states.iter().map(|s| s.balance().0).sum();
        if money != self.total {
            return Err(format!("after healing: {money} held, {} created", self.total));
        }
        Ok(())
    }
}

fn run_seed(
    seed: u64,
    steps: usize,
    live: bool,
) -> Result<(usize, usize, Vec<CrashPoint>), String> {
    let mut w = World::new(seed, live);
    for i in 0..steps {
        w.step().map_err(|e| format!("step {i}: {e}"))?;
        w.check().map_err(|e| format!("after step {i}: {e}"))?;
    }
    w.quiesce().map_err(|e| format!("healing: {e}"))?;
    let committed = w.reported.values().filter(|o| **o == Outcome::Committed).count();
    Ok((w.specs.len(), committed, w.crashed_at))
}

// Atomicity, conservation and no lasting doubt under crashes at every point, lost and
// duplicated messages, and restarts from the log alone.
#[test]
fn two_phase_commit_survives_random_crashes() {
    survives_random_crashes(false, 10_000);
}

// The same in live mode: concurrent reservations, relaying, and crashes that lose what
// was in flight to the dead process.
#[test]
fn live_two_phase_commit_survives_random_crashes() {
    survives_random_crashes(true, 5_000);
}

fn survives_random_crashes(live: bool, default_seeds: u64) {
    let (mut txs, mut committed) = (0, 0);
    let mut points = std::collections::BTreeMap::new();
    let seeds = util::seeds("TWO_PC_SEED", "TWO_PC_SEEDS", default_seeds);
    for &seed in &seeds {
        match run_seed(seed, 150, live) {
            Ok((t, c, crashed)) => {
                txs += t;
                committed += c;
                for p in crashed {
                    *points.entry(p.name()).or_insert(0) += 1;
                }
            }
            Err(e) => panic!(
                "seed {seed} failed (live: {live}; replay: TWO_PC_SEED={seed} cargo test --test \
                 two_pc_sim): {e}"
            ),
        }
    }
    println!(
        "live: {live}: {} seeds, {txs} transfers, {committed} reported committed: every \
         invariant held",
        seeds.len()
    );
    println!("crashes at each point: {points:?}");
    assert!(committed > 0, "the runs commit something");
    if seeds.len() >= 1000 {
        for p in CrashPoint::ALL {
            assert!(points.contains_key(p.name()), "no run crashed at {}", p.name());
        }
    }
}
