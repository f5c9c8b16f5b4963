//! The commands of SPEC chapters 2–4: `StartMaster`, `CreateNode`, `Send`, `Receive`,
//! `ReceiveAll`, `BeginSnapshot`, `CollectState`, `PrintSnapshot`. The ledger predicts
//! what each does (which Sends are refused, what each Receive takes, who records), so
//! most are sent to the nodes at once and answered only to disagree.

use super::expect::{record_events, Expect};
use super::fatal::Fatal;
use super::ledger::{ChannelId, Delivery};
use super::rules::{self, Rejection};
use super::session::Session;
use super::slots::Out;
use super::system::System;
use crate::ids::{Amount, NodeId, SnapshotId};
use crate::output;
use crate::trace::TraceEvent;
use crate::wire::{ChannelMsg, Control, ObserverRequest};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeSet;

/// `ReceiveAll` flushes at least every this many deliveries, and every
/// `DRAIN_PER_NODE` per node: its commands are all predicted, so larger batches cost
/// fewer writes and wake-ups (a snapshot of 256 nodes drains 65,280 markers; with a batch
/// of 4,096 a thousand nodes got four commands per wake-up) while the nodes still work
/// as the master goes on. Measured at 1,024 nodes: -37% of the drain's CPU.
const DRAIN_FLUSH_EVERY: usize = 4096;
const DRAIN_PER_NODE: usize = 64;

/// Why a node must not be paused while a process starts: every node links to the new one.
const LINKS_TO_NEW: &str = "every node links to the new process (Resume it first)";

impl Session {
    /// `StartMaster`: a new system, with nothing of the last one's.
    pub fn start_master(&mut self) -> Result<(), Fatal> {
        self.book.snaps = Default::default();
        self.book.txns = Default::default();
        let (dir, hosts) = (self.settings.data_dir.clone(), self.settings.hosts.as_ref());
        self.sys = Some(System::start(dir, hosts)?);
        self.trace(vec![TraceEvent::Start]);
        Ok(())
    }

    /// `CreateNode id amount [on host]`.
    pub fn create_node(
        &mut self,
        id: NodeId,
        amount: Amount,
        on: Option<&str>,
    ) -> Result<Result<(), Rejection>, Fatal> {
        let limits = (self.settings.max_nodes, self.settings.open_files);
        if let Err(why) = rules::create_node(&self.sys().ledger, id, amount, limits) {
            return Ok(Err(why));
        }
        if let Some(n) = self.paused_other_than(None) {
            return Ok(Err(format!("node {n} is paused: {LINKS_TO_NEW}").into()));
        }
        if let Err(why) = self.sys().place(id, on) {
            return Ok(Err(why.into()));
        }
        self.spawn_node(id, amount).map(Ok)
    }

    /// A paused node other than `except`, if there is one (a new process links to every
    /// node, which a stopped one cannot answer).
    pub fn paused_other_than(&self, except: Option<NodeId>) -> Option<NodeId> {
        let paused = self.sys.as_ref()?.ledger.paused();
        paused.into_iter().find(|&n| Some(n) != except)
    }

    fn spawn_node(&mut self, id: NodeId, amount: Amount) -> Result<(), Fatal> {
        self.sys().spawn_node(id, amount)?;
        let tracing = self.tracing();
        let sys = self.sys();
        let peers: Vec<NodeId> = sys.ledger.nodes().collect();
        let join = sys.ledger.add_node(id, amount);
        let mut trace = Vec::new();
        if tracing {
            trace.push(TraceEvent::Create { node: id, balance: amount });
            for &k in &join {
                trace.extend(record_events(id, k, amount, &peers));
            }
        }
        let down = sys.ledger.down();
        let setup = Control::Setup {
            peers: peers.clone(),
            join: join.clone(),
            down,
            resend: Vec::new(),
            live: false,
        };
        self.ask(id, setup, Expect::Ready(trace))?;
        for x in peers {
            if self.sys().ledger.is_down(x) {
                continue; // its restart's Setup lists every node
            }
            if tracing {
                let recorded: Vec<SnapshotId> = join
                    .iter()
                    .copied()
                    .filter(|&k| self.sys().ledger.has_recorded(x, k))
                    .collect();
                let markers = recorded.into_iter().map(|k| TraceEvent::Send {
                    from: x,
                    to: id,
                    msg: ChannelMsg::Marker { snapshot: k },
                });
                self.trace(markers.collect());
            }
            self.tell(x, Control::AddPeer { peer: id, join: join.clone() })?;
        }
        Ok(())
    }

    /// `Send from to amount`: predicted whole; the node answers only if it did otherwise.
    pub fn send(
        &mut self,
        from: NodeId,
        to: NodeId,
        amount: Amount,
    ) -> Result<Result<(), Rejection>, Fatal> {
        if let Err(why) = rules::acts(&self.sys().ledger, from, &[to]) {
            return Ok(Err(why));
        }
        let ok = self.sys().ledger.send(from, to, amount);
        let mut outs = Vec::new();
        if !ok {
            outs.push(Out::Line(output::ERR_SEND.to_string()));
        }
        if self.tracing() {
            outs.push(Out::Trace(if ok {
                TraceEvent::Send { from, to, msg: ChannelMsg::Transfer { amount } }
            } else {
                TraceEvent::ErrSend { from, to, amount }
            }));
        }
        self.push_done(outs, false);
        self.tell(from, Control::Send { to, amount, predicted: Some(ok) }).map(Ok)
    }

    /// `Receive to [from]`.
    pub fn receive(
        &mut self,
        to: NodeId,
        from: Option<NodeId>,
    ) -> Result<Result<(), Rejection>, Fatal> {
        let rng = &mut self.rng;
        let ledger = &self.sys.as_ref().expect("a system runs").ledger;
        match rules::receive(ledger, to, from, |s| s[rng.below(s.len())]) {
            Ok(c) => self.deliver(c, true).map(|_| Ok(())),
            Err(why) => Ok(Err(why)),
        }
    }

    /// Tells the channel's destination to take its head, as the ledger predicts it. A
    /// Transfer or a marker that makes no recording is predicted whole: the node answers
    /// only if it took something else. A recording (its balance goes into the trace) and
    /// a commit step are answered, and the master waits for a commit step's report
    /// before going on (what it sent is not predicted).
    pub fn deliver(&mut self, c: ChannelId, print: bool) -> Result<Delivery, Fatal> {
        let tracing = self.tracing();
        let predicted = self.sys().ledger.deliver(c);
        let (from, to) = c;
        let commit = matches!(predicted.msg, ChannelMsg::Commit(_));
        if !commit && !predicted.records {
            let mut outs = Vec::new();
            if print {
                outs.push(Out::Line(output::received(from, &predicted.msg)));
            }
            if tracing {
                outs.push(Out::Trace(TraceEvent::Deliver { from, to, msg: predicted.msg.clone() }));
            }
            self.push_done(outs, false);
            let receive = Control::Receive { from, predicted: Some(predicted.msg.clone()) };
            self.tell(to, receive)?;
            return Ok(predicted);
        }
        let peers = if tracing && predicted.records {
            self.sys().ledger.nodes().filter(|&x| x != to).collect()
        } else {
            Vec::new()
        };
        let e = Expect::Deliver { from, to, predicted: predicted.clone(), print, peers };
        let slot = self.ask(to, Control::Receive { from, predicted: None }, e)?;
        if commit {
            self.wait_slot(slot)?;
        }
        Ok(predicted)
    }

    /// `ReceiveAll`: random heads until every channel is empty; then, if transactions
    /// still wait (a message lost or held, a node down), their waiting sides time out
    /// (logical time) and whatever that sends is delivered in turn, until nothing moves.
    pub fn receive_all(&mut self) -> Result<(), Fatal> {
        for round in 0.. {
            if round > 100_000 {
                return Err(Fatal::Bug("ReceiveAll did not settle".into()));
            }
            self.receive_all_random()?;
            let all = self.book.txns.all();
            if all.is_empty() {
                return Ok(());
            }
            self.drive(&all)?;
            if self.sys().ledger.nonempty().is_empty() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Delivers the head of a random deliverable channel until none is left.
    fn receive_all_random(&mut self) -> Result<(), Fatal> {
        let mut open = Open::new(self.sys().ledger.nonempty());
        let every = DRAIN_FLUSH_EVERY.max(DRAIN_PER_NODE * self.sys().ledger.nodes().count());
        let mut steps = 0usize;
        while !open.is_empty() {
            let i = self.rng.below(open.len());
            let c = open.at(i);
            let d = self.deliver(c, false)?;
            if matches!(d.msg, ChannelMsg::Commit(_)) {
                // The step may have sent anything anywhere: take the channels afresh.
                open = Open::new(self.sys().ledger.nonempty());
                continue;
            }
            if self.sys().ledger.is_empty(c) {
                open.remove(i);
            }
            if d.records {
                // The markers the delivery made its receiver send, into nodes that are up.
                let ledger = &self.sys().ledger;
                let fresh: Vec<ChannelId> = ledger
                    .nodes()
                    .filter(|&x| x != c.1 && !open.contains(&(c.1, x)))
                    .map(|x| (c.1, x))
                    .filter(|nc| ledger.deliverable(nc))
                    .collect();
                open.extend(fresh);
            }
            steps += 1;
            if steps % every == 0 {
                self.sys().flush_all()?;
                self.sys().poll_now()?;
                self.drain_events()?;
                self.emit()?;
            }
        }
        Ok(())
    }

    /// `BeginSnapshot node` (the caller checked it may). In live mode the nodes, not the
    /// ledger, follow its markers.
    pub fn begin_snapshot(&mut self, node: NodeId) -> Result<(), Fatal> {
        let (tracing, live) = (self.tracing(), self.is_live());
        let sys = self.sys();
        let snapshot = if live { sys.ledger.begin_live() } else { sys.ledger.begin(node) };
        let peers =
            if tracing { sys.ledger.nodes().filter(|&x| x != node).collect() } else { Vec::new() };
        let seq = sys.owed.alloc_seq(node);
        self.book.snaps.since_collect.push(snapshot);
        self.hush(snapshot)?;
        let req = ObserverRequest::Begin { snapshot, node, seq };
        self.observe(req, Expect::Begin { node, snapshot, peers })?;
        Ok(())
    }

    /// `CollectState`. It waits for the observer's answer before the next command: a
    /// node that dies in a later command loses the records of the snapshots that are
    /// still to be gathered then, and those must not be the ones this line gathers.
    pub fn collect_state(
        &mut self,
        line: usize,
        text: &str,
    ) -> Result<Result<(), Rejection>, Fatal> {
        self.barrier()?;
        if let Some(why) = self.not_gatherable() {
            return Ok(Err(why.into()));
        }
        if self.book.snaps.since_collect.is_empty() {
            self.book.snaps.gathered.clear();
            return Ok(Ok(()));
        }
        let ids = self.book.snaps.since_collect.clone();
        let sys = self.sys();
        let snapshots: Vec<(SnapshotId, Vec<NodeId>)> =
            ids.iter().map(|&k| (k, sys.ledger.members(k))).collect();
        // Only the snapshots' members are asked: a node that joined later recorded
        // nothing of them, and may be down.
        let members: BTreeSet<NodeId> = snapshots.iter().flat_map(|(_, m)| m).copied().collect();
        let seqs = members.into_iter().map(|n| (n, sys.owed.alloc_seq(n))).collect();
        let wait = self.is_live();
        let req = ObserverRequest::Collect { snapshots, seqs, wait };
        let slot = self.observe(req, Expect::Collect { line, text: text.to_string(), ids })?;
        self.wait_slot(slot).map(Ok)
    }

    /// Why the snapshots begun since the last `CollectState` cannot be gathered now: one
    /// was lost with a node that crashed after recording it, or a member is down (it
    /// stays pending) or paused (a stopped process answers nothing; gathered after its
    /// `Resume`).
    fn not_gatherable(&mut self) -> Option<String> {
        if !self.book.snaps.lost.is_empty() {
            let why: Vec<String> = std::mem::take(&mut self.book.snaps.lost)
                .into_iter()
                .map(|(k, n)| format!("snapshot {k} is lost: node {n} crashed after recording it"))
                .collect();
            return Some(why.join("; "));
        }
        let ledger = &self.sys.as_ref()?.ledger;
        let member = |k: SnapshotId, f: &dyn Fn(NodeId) -> bool| {
            ledger.members(k).into_iter().find(|&n| f(n))
        };
        let pending = &self.book.snaps.since_collect;
        let down: Vec<String> = pending
            .iter()
            .filter_map(|&k| {
                Some(format!(
                    "snapshot {k} is not complete: node {} is down",
                    member(k, &|n| ledger.is_down(n))?
                ))
            })
            .collect();
        if !down.is_empty() {
            return Some(down.join("; "));
        }
        let paused: Vec<String> = pending
            .iter()
            .filter_map(|&k| {
                Some(format!(
                    "snapshot {k} cannot be gathered: node {} is paused",
                    member(k, &|n| ledger.is_paused(n))?
                ))
            })
            .collect();
        (!paused.is_empty()).then(|| paused.join("; "))
    }

    /// `PrintSnapshot`: what the last `CollectState` gathered, one block per snapshot.
    pub fn print_snapshot(&mut self) -> Result<(), Fatal> {
        self.barrier()?;
        let arrow = self.settings.arrow;
        let outs = self
            .book
            .snaps
            .gathered
            .iter()
            .map(|s| Out::Line(output::snapshot_block(s, arrow)))
            .collect();
        self.push_done(outs, false);
        Ok(())
    }
}

/// The channels `ReceiveAll` may take from, with each one's place for removal in O(1).
struct Open {
    list: Vec<ChannelId>,
    pos: HashMap<ChannelId, usize>,
}

impl Open {
    fn new(list: Vec<ChannelId>) -> Open {
        let pos = list.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        Open { list, pos }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn at(&self, i: usize) -> ChannelId {
        self.list[i]
    }

    fn contains(&self, c: &ChannelId) -> bool {
        self.pos.contains_key(c)
    }

    /// Removes the channel at `i` (the last one takes its place).
    fn remove(&mut self, i: usize) {
        let c = self.list.swap_remove(i);
        self.pos.remove(&c);
        if let Some(&moved) = self.list.get(i) {
            self.pos.insert(moved, i);
        }
    }

    fn extend(&mut self, cs: Vec<ChannelId>) {
        for c in cs {
            self.pos.insert(c, self.list.len());
            self.list.push(c);
        }
    }
}
