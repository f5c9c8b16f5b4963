//! One seeded simulation for every commit protocol, driven through the one trait
//! ([`CommitProtocol`], each node a [`Machine`]): transactions of 1 to 5 parts over node
//! accounts and named accounts (several of one node's accounts in one part), deliveries
//! in random order, duplicated and lost control messages, crashes now and at every crash
//! point (a crash keeps what was forced and a random part of the rest), restarts from the
//! log alone, partitions, pauses, timeouts, and live mode (relaying on; a crash loses what
//! was in flight to the dead process, and a restart resyncs each channel: the payee lists
//! the money it lacks and the payer pays again, with the same calls the node makes).
//!
//! After every step:
//! * no transaction committed at one node and aborted at another, and no decision
//!   reported both ways (what `Check` calls a split);
//! * a YES is never taken back; no node holds more than it owns;
//! * money is conserved, counting each node's balance as its log says when it is down, and
//!   each payment made and not received once (in a `Credit`, or owed after a crash);
//! * a payer and payee both up: a payment made is in the channel or received.
//!
//! At the end every fault heals (but, in one mode, one node that stays down) and, as the
//! master drives a transaction in a script, messages are delivered and the first waiting
//! node times out until nothing moves. Then nothing is in doubt and nothing waits, every
//! transaction is applied at all its parts or none, what was reported committed is
//! applied, the money adds up exactly, and every account holds its opening balance plus
//! the changes of the transactions applied.
//!
//! Timeouts: Paxos Commit and two-phase commit are safe whenever a timeout fires, so they
//! fire at random. Three-phase commit assumes a perfect failure detector, so its timeouts
//! fire only when nothing is deliverable. Without partitions and pauses it must never
//! split; with them the simulation must find a split (which proves the checker sees one).
//!
//! `COMMIT_SEEDS=100000 cargo test --release --test commit_sim` runs more (1,000 per
//! protocol and mode by default); `COMMIT_SEED=n` replays one, with its steps printed.

mod util;

use bank::ids::{AccountName, Amount, NodeId, TxnId};
use bank::protocol::commit::{CommitProtocol, Machine};
use bank::protocol::participant::LegState;
use bank::protocol::paxos_commit::PaxosCommit;
use bank::protocol::three_pc::ThreePc;
use bank::protocol::two_pc::TwoPc;
use bank::protocol::{Effect, Record};
use bank::rng::Rng;
use bank::wal::MemoryWal;
use bank::wire::{
    AbortReason, AccountKey, ChannelMsg, CommitMsg, CrashPoint, Protocol, TxOutcome, TxSpec,
    TxState,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// The faults of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Crashes (now and at crash points), duplicates, losses, delays; everything heals.
    Crashes,
    /// The same with partitions and pauses.
    Cuts,
    /// Crashes, and one node stays down when the rest heals.
    OneDown,
    /// Live mode: relaying, crashes that lose what was in flight, resync on restart.
    Live,
}

struct SimNode<P> {
    machine: Option<Machine<P>>,
    wal: MemoryWal<Record>,
    armed: Option<CrashPoint>,
    paused: bool,
}

struct World<P> {
    rng: Rng,
    mode: Mode,
    nodes: Vec<SimNode<P>>,
    channels: HashMap<(NodeId, NodeId), VecDeque<CommitMsg>>,
    /// One side of the partition, if any: channels between it and the rest are cut.
    cut: BTreeSet<NodeId>,
    specs: BTreeMap<TxnId, TxSpec>,
    /// Every account and its opening balance, by node.
    opening: BTreeMap<(NodeId, AccountKey), u64>,
    reported: HashMap<TxnId, TxOutcome>,
    /// The node that stays down when the rest heals, if any.
    left_down: Option<NodeId>,
    /// (node, transaction) whose part has voted YES.
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

impl<P: CommitProtocol> World<P> {
    fn new(seed: u64, mode: Mode, verbose: bool) -> World<P> {
        let mut rng = Rng::new(seed);
        let n = 3 + rng.below(3);
        let mut nodes = Vec::new();
        let mut total = 0;
        let mut opening = BTreeMap::new();
        for i in 0..n {
            let (id, balance) = (NodeId(i as u32), Amount(rng.below(100) as u64));
            total += balance.0;
            let mut wal = MemoryWal::new();
            wal.append(&Record::Opened { balance }).unwrap();
            let mut machine = Machine::new(id, balance);
            opening.insert((id, AccountKey::Own), balance.0);
            for a in 0..rng.below(3) {
                let name = AccountName::parse(&format!("N{i}x{a}")).unwrap();
                let amount = Amount(rng.below(100) as u64);
                total += amount.0;
                wal.append(&Record::AccountOpened { name: name.clone(), amount }).unwrap();
                assert!(machine.part.open(name.clone(), amount));
                opening.insert((id, AccountKey::Named(name)), amount.0);
            }
            wal.commit();
            machine.relay = mode == Mode::Live;
            nodes.push(SimNode { machine: Some(machine), wal, armed: None, paused: false });
        }
        World {
            rng,
            mode,
            nodes,
            channels: HashMap::new(),
            cut: BTreeSet::new(),
            specs: BTreeMap::new(),
            opening,
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

    fn ids(&self) -> Vec<NodeId> {
        (0..self.nodes.len() as u32).map(NodeId).collect()
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
        self.ids().into_iter().filter(|&m| m != n && self.runs(m) && !self.is_cut(n, m)).collect()
    }

    fn machine(&mut self, n: NodeId) -> &mut Machine<P> {
        self.nodes[idx(n)].machine.as_mut().expect("the caller checked it is up")
    }

    /// Carries out a step's effects in order, as the node driver does.
    fn execute(&mut self, node: NodeId, effects: Vec<Effect>) -> Result<(), String> {
        for e in effects {
            match e {
                Effect::Log { rec, force } => {
                    let n = &mut self.nodes[idx(node)];
                    n.wal.append(&rec).map_err(|e| e.to_string())?;
                    if force.forced() {
                        n.wal.commit();
                    }
                }
                Effect::Send { to, msg: ChannelMsg::Commit(m) } => {
                    self.channels.entry((node, to)).or_default().push_back(m)
                }
                Effect::Send { msg, .. } => return Err(format!("not a commit message: {msg:?}")),
                Effect::Point(p) => {
                    if self.nodes[idx(node)].armed == Some(p) {
                        self.crashed_at.insert(p.name());
                        self.note(format!("node {} dies at {}", node.0, p.name()));
                        self.crash(node);
                        return Ok(());
                    }
                }
                Effect::Decided { tx, outcome } => {
                    let committed = |o: TxOutcome| o == TxOutcome::Committed;
                    if let Some(prev) = self.reported.insert(tx, outcome) {
                        if committed(prev) != committed(outcome) {
                            return Err(format!("split: {tx} reported {prev:?}, then {outcome:?}"));
                        }
                    }
                }
                // A payment reached a part that aborted: its coordinator committed.
                Effect::Dropped { tx, amount } => {
                    return Err(format!("split: node {} dropped {tx}'s credit of {amount}", node.0))
                }
            }
        }
        Ok(())
    }

    fn crash(&mut self, node: NodeId) {
        if self.mode == Mode::Live {
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
        n.paused = false;
        n.wal.crash(reached);
    }

    fn restart(&mut self, node: NodeId) -> Result<(), String> {
        let records = self.nodes[idx(node)].wal.records();
        let mut out = Vec::new();
        let mut m = Machine::<P>::recover(node, &records, &mut out);
        m.relay = self.mode == Mode::Live;
        self.nodes[idx(node)].machine = Some(m);
        self.note(format!("node {} restarts", node.0));
        self.execute(node, out)?;
        if self.mode == Mode::Live {
            self.resync(node);
        }
        Ok(())
    }

    /// Live mode: the restarted node and every peer that is up pay again what the other
    /// says it lacks (the node's `Resync`: `owed_by` at the payee, `paid_to` at the payer).
    fn resync(&mut self, node: NodeId) {
        for peer in self.ids() {
            if peer == node || !self.up(peer) {
                continue;
            }
            for (payer, payee) in [(peer, node), (node, peer)] {
                let owed = self.machine(payee).part.owed_by(payer);
                let p = &self.machine(payer).part;
                let again: Vec<CommitMsg> =
                    owed.iter().filter_map(|&tx| p.paid_to(tx, payee)).collect();
                self.channels.entry((payer, payee)).or_default().extend(again);
            }
        }
    }

    fn pick(&mut self) -> NodeId {
        NodeId(self.rng.below(self.nodes.len()) as u32)
    }

    /// A random transaction of 1 to 5 parts (at most one per node): random net changes
    /// that sum to zero, each node's split over one to three of its accounts (so a part
    /// may move money between its own accounts too), the coordinator its first payer or,
    /// a third of the time, any node.
    fn random_spec(&mut self) -> TxSpec {
        let mut ids = self.ids();
        let k = if self.rng.below(10) == 0 { 1 } else { 2 + self.rng.below(ids.len().min(5) - 1) };
        let mut nodes = Vec::new();
        for _ in 0..k {
            nodes.push(ids.remove(self.rng.below(ids.len())));
        }
        let payers = if k == 1 { 1 } else { 1 + self.rng.below(k - 1) };
        let mut nets: Vec<(NodeId, i64)> = Vec::new();
        let mut due: i64 = 0;
        for (i, &node) in nodes.iter().enumerate() {
            let delta = if k == 1 {
                0
            } else if i < payers {
                let d = self.rng.below(40) as i64;
                due += d;
                -d
            } else if i + 1 == k {
                due
            } else {
                let d = self.rng.below(due as usize + 1) as i64;
                due -= d;
                d
            };
            nets.push((node, delta));
        }
        let mut changes: Vec<(NodeId, AccountKey, i64)> = Vec::new();
        for (node, delta) in nets {
            let mut keys: Vec<AccountKey> =
                self.opening.keys().filter(|(n, _)| *n == node).map(|(_, k)| k.clone()).collect();
            let m = 1 + self.rng.below(keys.len().min(3));
            let mut left = delta;
            for j in 0..m {
                let key = keys.remove(self.rng.below(keys.len()));
                let d = if j + 1 == m { left } else { self.rng.below(61) as i64 - 30 };
                left -= d;
                changes.push((node, key, d));
            }
        }
        // Shuffle so that payers are not always first.
        for i in (1..changes.len()).rev() {
            changes.swap(i, self.rng.below(i + 1));
        }
        let first_payer = changes.iter().find(|c| c.2 < 0).map_or(changes[0].0, |c| c.0);
        let coord = if self.rng.below(3) == 0 { self.pick() } else { first_payer };
        let tx = TxnId(self.next_tx);
        self.next_tx += 1;
        TxSpec::of_changes(tx, coord, &changes)
    }

    fn start(&mut self) -> Result<(), String> {
        let spec = self.random_spec();
        if !self.runs(spec.coord) {
            return Ok(());
        }
        self.specs.insert(spec.tx, spec.clone());
        self.note(format!("start {spec:?}"));
        let (mut out, ids) = (Vec::new(), self.ids());
        self.machine(spec.coord).start(&spec, &ids, &mut out);
        self.execute(spec.coord, out)
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
        self.machine(c.1).on_message(c.0, msg, &mut out);
        self.execute(c.1, out)?;
        Ok(true)
    }

    /// A timeout at `node` for one of the transactions it waits on.
    fn timeout_at(&mut self, node: NodeId, tx: TxnId) -> Result<bool, String> {
        let reach = self.reach(node);
        let mut out = Vec::new();
        self.machine(node).on_timeout(tx, AbortReason::NodeDown, &reach, &mut out);
        let moved = !out.is_empty();
        self.note(format!("timeout at {} for {tx} (reach {reach:?})", node.0));
        self.execute(node, out)?;
        Ok(moved)
    }

    /// Who may time out now: anyone waiting (at random), for three-phase commit only when
    /// nothing is deliverable (its perfect failure detector).
    fn timeout(&mut self) -> Result<bool, String> {
        if P::PROTOCOL == Protocol::ThreePc && !self.deliverable().is_empty() {
            return Ok(false);
        }
        let mut cands = Vec::new();
        for n in self.ids().into_iter().filter(|&n| self.runs(n)) {
            for tx in self.nodes[idx(n)].machine.as_ref().unwrap().waiting() {
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

    /// The network duplicates a message (money too: payments are idempotent), or loses
    /// one that carries no money (never three-phase commit's outside partitions: losses
    /// are failures its failure detector does not see).
    fn misdeliver(&mut self, lose: bool) {
        let open = self.deliverable();
        if open.is_empty() || (lose && P::PROTOCOL == Protocol::ThreePc && self.mode != Mode::Cuts)
        {
            return;
        }
        let c = open[self.rng.below(open.len())];
        let q = self.channels.get_mut(&c).unwrap();
        let i = self.rng.below(q.len());
        if !lose {
            let m = q[i].clone();
            q.push_back(m);
        } else if q[i].money().is_none() {
            let m = q.remove(i);
            self.note(format!("lose {m:?} on {c:?}"));
        }
    }

    fn step(&mut self) -> Result<(), String> {
        let roll = self.rng.below(100);
        let cuts = self.mode == Mode::Cuts;
        match roll {
            0..=14 => self.start(),
            15..=62 => self.deliver().map(|_| ()),
            63..=66 => {
                self.misdeliver(false);
                Ok(())
            }
            67..=68 => {
                self.misdeliver(true);
                Ok(())
            }
            69..=71 => {
                let n = self.pick();
                if self.up(n) {
                    self.note(format!("crash {}", n.0));
                    self.crash(n);
                }
                Ok(())
            }
            72..=76 => {
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
            83..=85 if cuts => {
                if self.cut.is_empty() {
                    let side: BTreeSet<NodeId> =
                        self.ids().into_iter().filter(|_| self.rng.below(2) == 0).collect();
                    self.note(format!("partition {side:?}"));
                    self.cut = side;
                } else {
                    self.note("heal".into());
                    self.cut.clear();
                }
                Ok(())
            }
            86..=87 if cuts => {
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

    /// Each node as its durable log says (what a restart would see) when it is down, as
    /// it is when it is up.
    fn states(&self) -> Vec<Cow<'_, Machine<P>>> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match &n.machine {
                Some(m) => Cow::Borrowed(m),
                None => Cow::Owned(Machine::recover(
                    NodeId(i as u32),
                    &n.wal.records(),
                    &mut Vec::new(),
                )),
            })
            .collect()
    }

    /// The invariants that hold after every step.
    fn check(&mut self) -> Result<(), String> {
        {
            let states = self.states();
            self.no_split(&states)?;
            self.money(&states)?;
        }
        self.no_yes_taken_back()
    }

    /// No transaction committed at one node and aborted at another (what `Check` calls a
    /// split).
    fn no_split(&self, states: &[Cow<'_, Machine<P>>]) -> Result<(), String> {
        let mut ends: HashMap<TxnId, (TxState, NodeId)> = HashMap::new();
        for (i, m) in states.iter().enumerate() {
            for (tx, st) in m.ended() {
                if let Some((other, at)) = ends.insert(tx, (st, NodeId(i as u32))) {
                    if other != st {
                        let (o, s) = (other.word(), st.word());
                        return Err(format!("split: {tx} {o} at node {}, {s} at node {i}", at.0));
                    }
                }
            }
        }
        Ok(())
    }

    /// A YES is never taken back: a part that voted YES aborts only once some node
    /// decided the abort.
    fn no_yes_taken_back(&mut self) -> Result<(), String> {
        for n in self.ids() {
            let Some(m) = &self.nodes[idx(n)].machine else { continue };
            for tx in m.part.in_doubt() {
                self.voted_yes.insert((n, tx));
            }
            for &(at, tx) in self.voted_yes.iter().filter(|v| v.0 == n) {
                let aborted = matches!(self.reported.get(&tx), Some(TxOutcome::Aborted(_)));
                if m.part.state(tx) == Some(LegState::Aborted) && !aborted {
                    return Err(format!("{tx}: node {} took its YES back", at.0));
                }
            }
        }
        Ok(())
    }

    /// Money is conserved: every balance (as its log says, for a node that is down), plus
    /// every payment made and not received, once; no node holds more than it owns; a
    /// payment made between two nodes that are up is in their channel or received.
    fn money(&self, states: &[Cow<'_, Machine<P>>]) -> Result<(), String> {
        let mut counted: u64 = 0;
        for (i, s) in states.iter().enumerate() {
            let a = s.part.accounts();
            let each = std::iter::once(("own".to_string(), a.own()))
                .chain(a.named().map(|(n, acc)| (n.to_string(), acc)));
            for (name, acc) in each {
                if acc.held() > acc.balance() {
                    return Err(format!(
                        "node {i} {name} holds {} of {}",
                        acc.held(),
                        acc.balance()
                    ));
                }
            }
            counted += a.total().0;
        }
        for (tx, spec) in &self.specs {
            for p in spec.payments() {
                let paid = states[idx(p.from)].part.applied(*tx);
                if !paid || !states[idx(p.to)].part.fresh_payment(*tx, p.from) {
                    continue;
                }
                counted += p.amount.0; // owed: in a Credit, or paid again on recovery
                let in_channel = self
                    .channels
                    .get(&(p.from, p.to))
                    .is_some_and(|q| q.iter().any(|m| m.money().is_some_and(|(t, _)| t == *tx)));
                if self.up(p.from) && self.up(p.to) && !in_channel {
                    return Err(format!(
                        "{tx}: {} paid {} and no Credit is in flight",
                        p.from, p.to
                    ));
                }
            }
        }
        if counted != self.total {
            let balances: Vec<u64> = states.iter().map(|s| s.part.accounts().total().0).collect();
            let owed: Vec<String> = self
                .specs
                .iter()
                .flat_map(|(tx, spec)| spec.payments().into_iter().map(move |p| (*tx, p)))
                .filter(|(tx, p)| {
                    states[idx(p.from)].part.applied(*tx)
                        && states[idx(p.to)].part.fresh_payment(*tx, p.from)
                })
                .map(|(tx, p)| format!("{tx}:{}->{}:{}", p.from, p.to, p.amount))
                .collect();
            return Err(format!(
                "money: {counted} counted, {} created (balances {balances:?}, owed {owed:?})",
                self.total
            ));
        }
        Ok(())
    }

    /// Every fault heals; then, as the master drives a transaction in a script: deliver
    /// while anything is deliverable; when nothing is, the first node still waiting
    /// (coordinators first, then by transaction and id) times out, each at most
    /// `TIMEOUTS` times per transaction. When no one is left to time out, it has settled.
    fn heal(&mut self) -> Result<(), String> {
        self.cut.clear();
        for n in &mut self.nodes {
            n.paused = false;
            n.armed = None;
        }
        for n in self.ids() {
            if !self.up(n) && self.left_down != Some(n) {
                self.restart(n)?;
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
            let mut waiting: Vec<(bool, TxnId, NodeId)> = Vec::new();
            for n in self.ids() {
                let Some(m) = &self.nodes[idx(n)].machine else { continue };
                for tx in m.waiting() {
                    if count.get(&(tx, n)).copied().unwrap_or(0) < TIMEOUTS {
                        waiting.push((self.specs.get(&tx).is_none_or(|s| s.coord != n), tx, n));
                    }
                }
            }
            waiting.sort();
            let Some(&(_, tx, n)) = waiting.first() else {
                return self.settled();
            };
            *count.entry((tx, n)).or_default() += 1;
            self.timeout_at(n, tx)?;
            self.check()?;
        }
    }

    /// After healing: nothing in doubt whose parts are all up; with every node up,
    /// nothing waits, nothing is held, every transaction applied at all its parts or
    /// none, what was reported committed applied, and the money exact.
    fn settled(&self) -> Result<(), String> {
        let states = self.states();
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(m) = &n.machine else { continue };
            for tx in m.part.in_doubt() {
                if self.specs[&tx].participants().all(|p| self.up(p)) {
                    return Err(format!("{tx} is still in doubt at node {i} after healing"));
                }
            }
        }
        if self.left_down.is_some() {
            return Ok(());
        }
        for (i, m) in states.iter().enumerate() {
            if let Some(tx) = m.waiting().first() {
                return Err(format!("{tx} never ends at node {i}: it waits after healing"));
            }
            if m.part.accounts().held() != Amount::ZERO {
                return Err(format!("node {i} still holds {}", m.part.accounts().held()));
            }
        }
        for (tx, spec) in &self.specs {
            let applied: Vec<bool> =
                spec.participants().map(|p| states[idx(p)].part.applied(*tx)).collect();
            let committed = self.reported.get(tx) == Some(&TxOutcome::Committed);
            if applied.iter().any(|&a| a != applied[0]) || (committed && !applied[0]) {
                return Err(format!(
                    "{tx}: applied {applied:?}, reported {committed} after healing"
                ));
            }
        }
        let money: u64 = states.iter().map(|s| s.part.accounts().total().0).sum();
        if money != self.total {
            return Err(format!("after healing: {money} held, {} created", self.total));
        }
        let mut want: BTreeMap<(NodeId, AccountKey), i64> =
            self.opening.iter().map(|(k, &v)| (k.clone(), v as i64)).collect();
        for (tx, spec) in &self.specs {
            if !spec.parts.first().is_some_and(|p| states[idx(p.node)].part.applied(*tx)) {
                continue;
            }
            for p in &spec.parts {
                for (key, d) in p.changes() {
                    *want.get_mut(&(p.node, key.clone())).expect("an opened account") += d;
                }
            }
        }
        for ((node, key), v) in want {
            let got = states[idx(node)].part.accounts().get(&key).map(|a| a.balance().0 as i64);
            if got != Some(v) {
                return Err(format!("node {} account {key:?}: {got:?}, want {v}", node.0));
            }
        }
        Ok(())
    }
}

/// Runs one seed; `Err` is a violation, with the last steps.
fn run<P: CommitProtocol>(seed: u64, mode: Mode, verbose: bool) -> Result<World<P>, String> {
    let mut w = World::<P>::new(seed, mode, verbose);
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

/// What a sweep of seeds found.
struct Sweep {
    seeds: usize,
    /// Seeds whose first violation was a split decision.
    splits: Vec<u64>,
    /// Every other violation (money, a YES taken back, undecided after healing, a panic).
    others: Vec<(u64, String)>,
    points: BTreeSet<&'static str>,
    /// Transactions started, by their number of parts.
    parts: BTreeMap<usize, usize>,
}

fn sweep<P: CommitProtocol>(mode: Mode) -> Sweep {
    let seeds = util::seeds("COMMIT_SEED", "COMMIT_SEEDS", 1_000);
    let verbose = seeds.len() == 1;
    let mut found = Sweep {
        seeds: seeds.len(),
        splits: Vec::new(),
        others: Vec::new(),
        points: BTreeSet::new(),
        parts: BTreeMap::new(),
    };
    let mut first_split = None;
    for &seed in &seeds {
        let outcome = std::panic::catch_unwind(|| run::<P>(seed, mode, verbose));
        let outcome = outcome.unwrap_or_else(|p| {
            let what = p.downcast_ref::<&str>().map(|s| s.to_string());
            let what = what.or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            Err(format!("a machine panicked: {what}"))
        });
        match outcome {
            Ok(w) => {
                for s in w.specs.values() {
                    *found.parts.entry(s.parts.len()).or_default() += 1;
                }
                found.points.extend(w.crashed_at);
            }
            Err(e) if e.starts_with("split") => {
                found.splits.push(seed);
                first_split.get_or_insert((seed, e));
            }
            Err(e) => found.others.push((seed, e)),
        }
    }
    println!(
        "{} {mode:?}: {} seeds, transactions by parts {:?}, {} splits, {} other violations, \
         crash points {:?}",
        P::PROTOCOL.word(),
        seeds.len(),
        found.parts,
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

fn assert_safe<P: CommitProtocol>(mode: Mode) {
    let found = sweep::<P>(mode);
    let word = P::PROTOCOL.word();
    let split = found.splits.first().map(|&s| (s, "a split".to_string()));
    if let Some((seed, e)) = found.others.first().cloned().or(split) {
        panic!("{word} {mode:?} must never fail ({} seeds); COMMIT_SEED={seed}: {e}", found.seeds);
    }
    if found.seeds >= 1000 {
        for p in points_of(P::PROTOCOL) {
            assert!(found.points.contains(p), "{word}: no run crashed at {p}");
        }
        for k in 1..=5 {
            assert!(
                found.parts.get(&k).is_some_and(|&n| n > 0),
                "{word}: no transaction of {k} parts"
            );
        }
    }
}

#[test]
fn two_phase_commit_never_splits() {
    assert_safe::<TwoPc>(Mode::Crashes);
    assert_safe::<TwoPc>(Mode::Cuts);
    assert_safe::<TwoPc>(Mode::Live);
}

#[test]
fn paxos_commit_never_splits_and_always_ends() {
    assert_safe::<PaxosCommit>(Mode::Crashes);
    assert_safe::<PaxosCommit>(Mode::Cuts);
    assert_safe::<PaxosCommit>(Mode::OneDown);
    assert_safe::<PaxosCommit>(Mode::Live);
}

#[test]
fn three_phase_commit_is_safe_with_a_perfect_failure_detector() {
    assert_safe::<ThreePc>(Mode::Crashes);
    assert_safe::<ThreePc>(Mode::Live);
}

// The demonstration of why Paxos Commit exists: under partitions and pauses three-phase
// commit splits, and the simulation must see it do so; nothing else may go wrong.
#[test]
fn three_phase_commit_splits_under_partitions_and_pauses() {
    let found = sweep::<ThreePc>(Mode::Cuts);
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
    let found = sweep::<TwoPc>(Mode::OneDown);
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
