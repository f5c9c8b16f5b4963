//! A command file run in one process, with no processes, sockets, files or clocks: the
//! parser, the master's [`Ledger`] and every node's machine ([`Branch`]), on channels
//! that are plain queues.
//!
//! It runs the snapshot commands of chapters 2–4 (`StartMaster`, `CreateNode`, `Send`,
//! `Receive`, `ReceiveAll`, `BeginSnapshot`, `CollectState`, `PrintSnapshot`, `KillAll`)
//! as the master does, rejecting the same lines, and prints the same stdout for the same
//! seed; other commands are counted and skipped. After every command it holds the
//! ledger's predictions against what the machines did, and the money against all money
//! created, and reports the first difference as a [`Violation`]. The benchmark's
//! in-process baseline and the fuzzer (`fuzz/`, [`crate::fuzzing`]) run it.

use crate::command::{parse_line, Command};
use crate::ids::{Amount, NodeId, SnapshotId};
use crate::master::{rules, ChannelId, Ledger};
use crate::output::{self, Arrow};
use crate::protocol::snapshot::assemble;
use crate::protocol::{Branch, Effect};
use crate::rng::Rng;
use crate::wire::{ChannelMsg, GlobalSnapshot, ObserverReply};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// What a replay printed and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The stdout lines, in order.
    pub stdout: Vec<String>,
    /// Lines rejected (as the master would reject them).
    pub rejected: usize,
    /// Commands this model does not run (transfers, faults, live mode).
    pub skipped: usize,
}

/// A rule broken inside the model: the ledger and the machines disagree, or money was
/// lost or created. Always a bug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One running system.
#[derive(Default)]
struct World {
    ledger: Ledger,
    branches: BTreeMap<NodeId, Branch>,
    queues: HashMap<ChannelId, VecDeque<ChannelMsg>>,
    since_collect: Vec<SnapshotId>,
    gathered: Vec<GlobalSnapshot>,
}

/// Runs `text` with `seed` for the random choices, checking the money after every
/// command (which costs a walk of every channel each time).
///
/// # Errors
/// The first [`Violation`].
pub fn run(text: &str, seed: u64) -> Result<Outcome, Violation> {
    run_with(text, seed, true)
}

/// [`run`], with the money checked after every command only when `check_money`: what the
/// master and the nodes do, and nothing more, when it is off (the benchmark's baseline).
/// The ledger's predictions are held against the machines either way.
///
/// # Errors
/// The first [`Violation`].
pub fn run_with(text: &str, seed: u64, check_money: bool) -> Result<Outcome, Violation> {
    let mut rng = Rng::new(seed);
    let mut out = Outcome::default();
    let mut world: Option<World> = None;
    for (i, line) in text.lines().enumerate() {
        let cmd = match parse_line(i + 1, line) {
            Ok(Some(cmd)) => cmd,
            Ok(None) => continue,
            Err(_) => {
                out.rejected += 1;
                continue;
            }
        };
        match (cmd, world.as_mut()) {
            (Command::StartMaster, None) => world = Some(World::default()),
            (Command::StartMaster, Some(_)) => out.rejected += 1,
            (Command::Help, _) => {}
            (_, None) => out.rejected += 1,
            (Command::KillAll, Some(_)) => world = None,
            (cmd, Some(w)) => match w.step(cmd, &mut rng, &mut out.stdout)? {
                Step::Ran => {}
                Step::Rejected => out.rejected += 1,
                Step::Skipped => out.skipped += 1,
            },
        }
        if let (Some(w), true) = (&world, check_money) {
            w.check()?;
        }
    }
    Ok(out)
}

enum Step {
    Ran,
    Rejected,
    Skipped,
}

impl World {
    /// Runs one command, as the master would (the same rules: `master::rules`).
    fn step(
        &mut self,
        cmd: Command,
        rng: &mut Rng,
        stdout: &mut Vec<String>,
    ) -> Result<Step, Violation> {
        let ran = match cmd {
            Command::CreateNode { id, amount, .. } => self.create_node(id, amount),
            Command::Send { from, to, amount } => self.send(from, to, amount, stdout)?,
            Command::Receive { to, from } => {
                let pick = |s: &[NodeId]| s[rng.below(s.len())];
                match rules::receive(&self.ledger, to, from, pick) {
                    Ok(c) => {
                        let msg = self.deliver(c)?;
                        stdout.push(output::received(c.0, &msg));
                        true
                    }
                    Err(_) => false,
                }
            }
            Command::ReceiveAll => {
                // As the master: a random non-empty channel at every step.
                loop {
                    let open = self.ledger.nonempty();
                    if open.is_empty() {
                        break;
                    }
                    self.deliver(open[rng.below(open.len())])?;
                }
                true
            }
            Command::BeginSnapshot { node } => self.begin_snapshot(node, stdout),
            Command::CollectState => self.collect_state()?,
            Command::PrintSnapshot => {
                for s in &self.gathered {
                    let block = output::snapshot_block(s, Arrow::Ascii);
                    stdout.extend(block.lines().map(str::to_string));
                }
                true
            }
            _ => return Ok(Step::Skipped),
        };
        Ok(if ran { Step::Ran } else { Step::Rejected })
    }

    /// `CreateNode`: a new branch linked to every other, joining running snapshots.
    fn create_node(&mut self, id: NodeId, amount: Amount) -> bool {
        if rules::create_node(&self.ledger, id, amount, (u64::MAX, 0)).is_err() {
            return false;
        }
        let peers: Vec<NodeId> = self.ledger.nodes().collect();
        let join = self.ledger.add_node(id, amount);
        let mut b = Branch::new(id, amount);
        let mut out = Vec::new();
        b.on_setup(&peers, &join, &mut out);
        self.branches.insert(id, b);
        self.enqueue(id, &mut out);
        for p in peers {
            self.branch(p).on_add_peer(id, &join, &mut out);
            self.enqueue(p, &mut out);
        }
        true
    }

    /// `Send`: the ledger's prediction held against the machine.
    fn send(
        &mut self,
        from: NodeId,
        to: NodeId,
        amount: Amount,
        stdout: &mut Vec<String>,
    ) -> Result<bool, Violation> {
        if rules::acts(&self.ledger, from, &[to]).is_err() {
            return Ok(false);
        }
        let predicted = self.ledger.send(from, to, amount);
        let mut out = Vec::new();
        let sent = self.branch(from).on_send(to, amount, &mut out).is_ok();
        if sent != predicted {
            return Err(Violation(format!(
                "node {from} {} a Send of {amount} the ledger {}",
                if sent { "made" } else { "refused" },
                if predicted { "predicted" } else { "refused" }
            )));
        }
        self.enqueue(from, &mut out);
        if !sent {
            stdout.push(output::ERR_SEND.to_string());
        }
        Ok(true)
    }

    /// `BeginSnapshot`: the initiator records and sends its markers.
    fn begin_snapshot(&mut self, node: NodeId, stdout: &mut Vec<String>) -> bool {
        if rules::acts(&self.ledger, node, &[]).is_err() {
            return false;
        }
        let k = self.ledger.begin(node);
        self.since_collect.push(k);
        let mut out = Vec::new();
        self.branch(node).on_begin_snapshot(k, &mut out);
        self.enqueue(node, &mut out);
        stdout.push(output::started(node));
        true
    }

    /// `CollectState`: every complete snapshot assembled as the observer does, each
    /// holding all money its nodes created.
    fn collect_state(&mut self) -> Result<bool, Violation> {
        if self.since_collect.is_empty() {
            self.gathered.clear();
            return Ok(true);
        }
        let wanted: Vec<(SnapshotId, Vec<NodeId>)> =
            self.since_collect.iter().map(|&k| (k, self.ledger.members(k))).collect();
        let ids: Vec<SnapshotId> = wanted.iter().map(|w| w.0).collect();
        let reports = self.branches.iter().map(|(&id, b)| (id, b.collect(&ids))).collect();
        let ObserverReply::Collected(snaps) = assemble(&wanted, &reports) else { return Ok(false) };
        for s in &snaps {
            let created = self.ledger.created_in(s.snapshot);
            if s.total() != Some(created) {
                return Err(Violation(format!(
                    "snapshot {} holds {:?}, its nodes created {created}",
                    s.snapshot,
                    s.total()
                )));
            }
        }
        self.since_collect.clear();
        self.gathered = snaps;
        Ok(true)
    }

    fn branch(&mut self, id: NodeId) -> &mut Branch {
        self.branches.get_mut(&id).expect("the ledger and the branches hold the same nodes")
    }

    /// Carries out a machine's sends: onto the channels, in order.
    fn enqueue(&mut self, from: NodeId, out: &mut Vec<Effect>) {
        for e in out.drain(..) {
            if let Effect::Send { to, msg } = e {
                self.queues.entry((from, to)).or_default().push_back(msg);
            }
        }
    }

    /// Delivers the head of channel `c`, as predicted by the ledger and as done by the
    /// receiving machine, which must agree.
    fn deliver(&mut self, c: ChannelId) -> Result<ChannelMsg, Violation> {
        let predicted = self.ledger.deliver(c);
        let Some(msg) = self.queues.get_mut(&c).and_then(|q| q.pop_front()) else {
            return Err(Violation(format!("the ledger delivers on {c:?}, which is empty")));
        };
        let mut out = Vec::new();
        let recorded = self.branch(c.1).on_deliver(c.0, msg.clone(), &mut out);
        self.enqueue(c.1, &mut out);
        if msg != predicted.msg || recorded.is_some() != predicted.records {
            return Err(Violation(format!(
                "node {} took {msg:?} (recorded {recorded:?}); the ledger predicted {predicted:?}",
                c.1
            )));
        }
        Ok(msg)
    }

    /// Money is conserved and the ledger knows every balance.
    fn check(&self) -> Result<(), Violation> {
        let mut total = Amount::ZERO;
        for (&id, b) in &self.branches {
            if b.balance() != self.ledger.balance(id) {
                return Err(Violation(format!(
                    "node {id} holds {}, the ledger says {}",
                    b.balance(),
                    self.ledger.balance(id)
                )));
            }
            total = total.checked_add(b.balance()).ok_or_else(|| Violation("overflow".into()))?;
        }
        let in_flight: Amount = self.queues.values().flatten().filter_map(|m| m.money()).sum();
        if total.checked_add(in_flight) != Some(self.ledger.created()) {
            return Err(Violation(format!(
                "{total} in the nodes and {in_flight} in the channels, {} created",
                self.ledger.created()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The course's example 1 prints what the real run prints.
    #[test]
    fn example_one_prints_the_spec_block() {
        let text = "StartMaster\nCreateNode 1 1000\nCreateNode 2 500\nSend 1 2 300\n\
                    Send 2 1 100\nBeginSnapshot 1\nReceive 2 1\nReceiveAll\nCollectState\n\
                    PrintSnapshot\nKillAll\n";
        let out = run(text, 1).unwrap();
        assert_eq!(out.rejected, 0);
        assert_eq!(out.stdout[0], "Started by Node 1");
        assert_eq!(out.stdout[1], "1 Transfer 300");
        assert!(out.stdout.contains(&"channel (2 -> 1) = 100".to_string()), "{:?}", out.stdout);
    }

    // Rejected lines are counted, not run; commands it does not model are skipped.
    #[test]
    fn it_rejects_what_the_master_rejects_and_skips_the_rest() {
        let text = "Send 1 2 3\nStartMaster\nStartMaster\nCreateNode 1 5\nCreateNode 1 5\n\
                    Send 1 9 1\nReceive 1\nFoo\nTransfer 1 1 3\nCreateNode 2 0\nCollectState\n\
                    Crash 1\nSend 1 2 6\n";
        let out = run(text, 1).unwrap();
        assert_eq!((out.rejected, out.skipped), (7, 1));
        assert_eq!(out.stdout, vec!["ERR_SEND"]);
    }
}
