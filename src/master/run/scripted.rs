//! The commands of scripted mode (SPEC chapters 2–4, and those that work alike in live
//! mode): creating nodes, Send and Receive with the ledger's predictions, snapshots.
//! A child of `run`: the same `Master`, its other concern.

use super::*;
use crate::wire::Protocol;
use std::collections::BTreeSet;

/// Why a node must not be paused while a process starts: every node links to the new one.
const LINKS_TO_NEW: &str = "every node links to the new process (Resume it first)";

impl Master {
    /// A command in scripted mode (and those that work alike in live mode).
    pub(super) fn execute_scripted(
        &mut self,
        line: usize,
        text: &str,
        cmd: Command,
    ) -> Result<(), Fatal> {
        match cmd {
            Command::Live { on: true } => self.live_on(line, text)?,
            Command::Live { on: false } => self.reject(line, text, "live mode is not on"),
            Command::Load { .. } => {
                self.reject(line, text, "Load runs in live mode only (Live on first)")
            }
            Command::Wait => {} // no load runs outside live mode
            Command::CreateNode { id, amount, on } => {
                let ledger = &self.sys().ledger;
                if ledger.has_node(id) {
                    self.reject(line, text, format!("node {id} already exists"));
                } else if ledger.created().checked_add(amount).is_none() {
                    let total = ledger.created();
                    self.reject(
                        line,
                        text,
                        format!(
                            "the total money ({total} + {amount}) would exceed {}",
                            Amount::MAX
                        ),
                    );
                } else if ledger.nodes().count() as u64 >= self.max_nodes {
                    let (max, limit) = (self.max_nodes, self.open_files);
                    self.reject(
                        line,
                        text,
                        format!(
                            "{max} nodes is the most this run can hold: each process may open \
                             {limit} files (ulimit -n), and a node takes 3 in the master; \
                             raise the limit to run more"
                        ),
                    );
                } else if let Some(n) = self.paused_other_than(None) {
                    self.reject(line, text, format!("node {n} is paused: {LINKS_TO_NEW}"));
                } else if let Err(why) = self.sys().place(id, on.as_deref()) {
                    self.reject(line, text, why);
                } else {
                    self.create_node(id, amount)?;
                }
            }
            Command::Send { from: node, .. }
            | Command::Receive { to: node, .. }
            | Command::BeginSnapshot { node }
                if !self.runs(node) =>
            {
                let state = if self.is_down(node) { "down" } else { "paused" };
                self.reject(line, text, format!("node {node} is {state}"))
            }
            Command::Lose { to, .. } if self.is_paused(to) => self.reject(
                line,
                text,
                format!("node {to} is paused: what it was sent is in its process"),
            ),
            Command::Crash { node } | Command::CrashAt { node, .. } if self.is_down(node) => {
                self.reject(line, text, format!("node {node} is already down"))
            }
            // Arming a crash point is a command to the node, which a stopped process
            // cannot take (SPEC chapter 8: a paused node takes no command).
            Command::CrashAt { node, .. } if self.is_paused(node) => {
                self.reject(line, text, format!("node {node} is paused"))
            }
            Command::Crash { node } => {
                if self.known(line, text, &[node]) {
                    self.txns.faults = true;
                    self.crash(node)?;
                }
            }
            Command::CrashAt { node, point } => {
                if self.known(line, text, &[node]) {
                    self.txns.faults = true;
                    let slot = self.push_await(Expect::Ready(Vec::new()));
                    self.sys().command(node, Control::ArmCrash { point }, slot)?;
                }
            }
            Command::Hold { from, to } | Command::Release { from, to } => {
                let hold = matches!(cmd, Command::Hold { .. });
                self.txns.faults |= hold;
                if self.known(line, text, &[from, to]) && !self.sys().ledger.hold((from, to), hold)
                {
                    let state = if hold { "already held" } else { "not held" };
                    self.reject(line, text, format!("channel {from} -> {to} is {state}"));
                }
            }
            Command::Lose { from, to } => {
                if self.known(line, text, &[from, to]) {
                    self.txns.faults = true;
                    self.lose(line, text, from, to)?;
                }
            }
            Command::Restart { node } => {
                if !self.known(line, text, &[node]) {
                } else if let Some(n) = self.paused_other_than(Some(node)) {
                    self.reject(line, text, format!("node {n} is paused: {LINKS_TO_NEW}"));
                } else {
                    self.txns.faults = true;
                    self.restart(node)?;
                }
            }
            Command::Send { from, to, amount } => {
                if self.known(line, text, &[from, to]) {
                    // Predicted whole: the node answers only if it did otherwise.
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
                    self.sys().tell(from, Control::Send { to, amount, predicted: Some(ok) })?;
                }
            }
            Command::Receive { to, from } => {
                let ids: Vec<NodeId> = std::iter::once(to).chain(from).collect();
                if self.known(line, text, &ids) {
                    self.receive(line, text, to, from)?;
                }
            }
            Command::ReceiveAll => self.receive_all()?,
            Command::BeginSnapshot { node } => {
                if self.known(line, text, &[node]) {
                    self.begin_snapshot(node)?;
                }
            }
            Command::CollectState => self.collect_state(line, text)?,
            Command::PrintSnapshot => {
                self.barrier()?;
                let arrow = self.arrow;
                let outs = self
                    .gathered
                    .iter()
                    .map(|s| Out::Line(output::snapshot_block(s, arrow)))
                    .collect();
                self.push_done(outs, false);
            }
            Command::KillAll => {
                self.settle()?;
                self.system = None;
                self.live = None;
            }
            Command::Transfer { from, to, amount, via, nowait, protocol } => {
                let ids: Vec<NodeId> = [from, to].into_iter().chain(via).collect();
                let protocol = protocol.unwrap_or(self.txns.protocol);
                if !self.known(line, text, &ids) {
                } else if protocol == Protocol::Paxos && self.sys().ledger.nodes().count() < 3 {
                    self.reject(line, text, live::PAXOS_NEEDS_THREE);
                } else {
                    self.transfer(from, to, amount, via, nowait, protocol)?;
                }
            }
            Command::Protocol { protocol } => self.txns.protocol = protocol,
            Command::Pause { node } | Command::Resume { node } => {
                let pause = matches!(cmd, Command::Pause { .. });
                if !self.known(line, text, &[node]) {
                } else if self.is_down(node) {
                    self.reject(line, text, format!("node {node} is down"));
                } else if self.is_paused(node) == pause {
                    let state = if pause { "already paused" } else { "not paused" };
                    self.reject(line, text, format!("node {node} is {state}"));
                } else if pause {
                    self.txns.faults = true;
                    self.pause(node)?;
                } else {
                    self.resume(node)?;
                }
            }
            Command::Partition { nodes } => {
                if self.known(line, text, &nodes) {
                    self.txns.faults = true;
                    self.partition(&nodes)?;
                }
            }
            Command::Heal => self.heal()?,
            Command::Balances => {
                let all: Vec<NodeId> = self.sys().ledger.nodes().collect();
                let up: Vec<NodeId> = all.iter().copied().filter(|&n| self.runs(n)).collect();
                let mut got = self.query(&up, None)?.into_iter().peekable();
                let mut outs = Vec::new();
                for n in all {
                    match got.peek() {
                        Some(q) if q.0 == n => {
                            let (n, balance, held, _) = got.next().expect("peeked");
                            outs.push(Out::Line(output::balance(n, balance, held)));
                        }
                        _ if self.is_paused(n) => {
                            outs.push(Out::Line(format!("node {n} = paused")))
                        }
                        _ => outs.push(Out::Line(format!("node {n} = down"))),
                    }
                }
                self.push_done(outs, false);
            }
            Command::TxStatus { tx } => match self.txns.specs.get(&tx).cloned() {
                None => self.reject(line, text, format!("unknown transaction {tx}")),
                Some(spec) => self.tx_status(spec)?,
            },
            Command::Check => self.check()?,
            Command::Stats => self.stats()?,
            Command::StartMaster | Command::Help => unreachable!("handled above"),
        }
        Ok(())
    }

    pub(super) fn start_master(&mut self) -> Result<(), Fatal> {
        self.gathered.clear();
        self.since_collect.clear();
        self.txns = Txns::default();
        self.lost_snapshots.clear();
        self.system = Some(System::start(self.data_dir.clone(), self.hosts.as_ref())?);
        if self.tracing() {
            self.push_done(vec![Out::Trace(TraceEvent::Start)], false);
        }
        Ok(())
    }

    pub(super) fn create_node(&mut self, id: NodeId, amount: Amount) -> Result<(), Fatal> {
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
        let mut adds = Vec::new();
        for &x in &peers {
            let mut t = Vec::new();
            if tracing {
                let msgs = join.iter().filter(|&&k| sys.ledger.has_recorded(x, k));
                t.extend(msgs.map(|&k| TraceEvent::Send {
                    from: x,
                    to: id,
                    msg: ChannelMsg::Marker { snapshot: k },
                }));
            }
            adds.push((x, t));
        }
        let slot = self.push_await(Expect::Ready(trace));
        let down = self.sys().ledger.down();
        let setup =
            Control::Setup { peers, join: join.clone(), down, resend: Vec::new(), live: false };
        self.sys().command(id, setup, slot)?;
        for (x, t) in adds {
            if self.sys().ledger.is_down(x) {
                continue; // its restart's Setup lists every node
            }
            if !t.is_empty() {
                self.push_done(t.into_iter().map(Out::Trace).collect(), false);
            }
            self.sys().tell(x, Control::AddPeer { peer: id, join: join.clone() })?;
        }
        Ok(())
    }

    pub(super) fn receive(
        &mut self,
        line: usize,
        text: &str,
        to: NodeId,
        from: Option<NodeId>,
    ) -> Result<(), Fatal> {
        let from = match from {
            Some(from) => from,
            None => {
                let sources = self.sys().ledger.incoming(to);
                if sources.is_empty() {
                    self.reject(line, text, format!("no message is waiting for node {to}"));
                    return Ok(());
                }
                sources[self.rng.below(sources.len())]
            }
        };
        if self.sys().ledger.head((from, to)).is_none() {
            self.reject(line, text, format!("channel {from} -> {to} is empty"));
            return Ok(());
        }
        if self.sys().ledger.is_held((from, to)) {
            self.reject(line, text, format!("channel {from} -> {to} is held (Release it first)"));
            return Ok(());
        }
        if self.sys().ledger.is_lost((from, to)) {
            // Its messages died with the receiver's process; only the sender has them.
            let why = format!(
                "channel {from} -> {to} waits for node {from} to send its messages again, \
                 and node {from} is down"
            );
            self.reject(line, text, why);
            return Ok(());
        }
        self.deliver((from, to), true)?;
        Ok(())
    }

    /// Tells the channel's destination to take its head, as the ledger predicts it. A
    /// two-phase-commit message's effects are not predicted: the master waits for the
    /// node's report and applies it to the ledger before going on.
    /// A Transfer or a marker that makes no recording is predicted whole: the node answers
    /// only if it took something else. A recording (its balance goes into the trace) and
    /// a two-phase-commit step are answered.
    pub(super) fn deliver(&mut self, c: ChannelId, print: bool) -> Result<Delivery, Fatal> {
        let tracing = self.tracing();
        let sys = self.sys();
        let predicted = sys.ledger.deliver(c);
        let (from, to) = c;
        let tx = matches!(predicted.msg, ChannelMsg::Commit(_));
        if !tx && !predicted.records {
            let mut outs = Vec::new();
            if print {
                outs.push(Out::Line(output::received(from, &predicted.msg)));
            }
            if tracing {
                outs.push(Out::Trace(TraceEvent::Deliver { from, to, msg: predicted.msg.clone() }));
            }
            self.push_done(outs, false);
            let receive = Control::Receive { from, predicted: Some(predicted.msg.clone()) };
            self.sys().tell(to, receive)?;
            return Ok(predicted);
        }
        let peers = if tracing && predicted.records {
            sys.ledger.nodes().filter(|&x| x != to).collect()
        } else {
            Vec::new()
        };
        let slot = self.push_await(Expect::Deliver {
            from,
            to,
            predicted: predicted.clone(),
            print,
            peers,
        });
        self.sys().command(to, Control::Receive { from, predicted: None }, slot)?;
        if tx {
            self.wait_slot(slot)?;
        }
        Ok(predicted)
    }

    /// `ReceiveAll`: random heads until every channel is empty; then, if transactions
    /// still wait (a message lost or held, a node down), their waiting sides time out
    /// (logical time) and whatever that sends is delivered in turn, until nothing moves.
    pub(super) fn receive_all(&mut self) -> Result<(), Fatal> {
        for round in 0.. {
            if round > 100_000 {
                return Err(Fatal("bug: ReceiveAll did not settle".into()));
            }
            self.receive_all_random()?;
            let mut all: Vec<TxnId> = self.txns.specs.keys().copied().collect();
            if all.is_empty() {
                return Ok(());
            }
            all.sort();
            self.drive(&all)?;
            if self.sys().ledger.nonempty().is_empty() {
                return Ok(());
            }
        }
        Ok(())
    }

    pub(super) fn receive_all_random(&mut self) -> Result<(), Fatal> {
        let mut open = self.sys().ledger.nonempty();
        let mut pos: HashMap<ChannelId, usize> =
            open.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let mut steps = 0usize;
        while !open.is_empty() {
            let i = self.rng.below(open.len());
            let c = open[i];
            let d = self.deliver(c, false)?;
            if matches!(d.msg, ChannelMsg::Commit(_)) {
                // The step may have sent anything anywhere: take the channels afresh.
                open = self.sys().ledger.nonempty();
                pos = open.iter().enumerate().map(|(i, &c)| (c, i)).collect();
                continue;
            }
            if self.sys().ledger.is_empty(c) {
                pos.remove(&c);
                open.swap_remove(i);
                if let Some(&moved) = open.get(i) {
                    pos.insert(moved, i);
                }
            }
            if d.records {
                // The markers the delivery made its receiver send, into nodes that are up.
                let ledger = &self.sys().ledger;
                let fresh: Vec<ChannelId> = ledger
                    .nodes()
                    .filter(|&x| x != c.1 && !pos.contains_key(&(c.1, x)))
                    .map(|x| (c.1, x))
                    .filter(|nc| ledger.deliverable(nc))
                    .collect();
                for nc in fresh {
                    pos.insert(nc, open.len());
                    open.push(nc);
                }
            }
            steps += 1;
            if steps % DRAIN_FLUSH_EVERY == 0 {
                self.sys().flush_all()?;
                self.sys().poll_now()?;
                self.drain_events()?;
                self.emit_ready()?;
            }
        }
        Ok(())
    }

    /// Waits until slot `id` has its answer.
    pub(super) fn wait_slot(&mut self, id: u64) -> Result<(), Fatal> {
        while id >= self.first_slot
            && matches!(self.slots.get((id - self.first_slot) as usize), Some(Slot::Await(_)))
        {
            self.wait_one()?;
        }
        Ok(())
    }

    /// `BeginSnapshot`. In live mode the nodes, not the ledger, follow its markers.
    pub(super) fn begin_snapshot(&mut self, node: NodeId) -> Result<(), Fatal> {
        let (tracing, live) = (self.tracing(), self.is_live());
        let sys = self.sys();
        let snapshot = if live { sys.ledger.begin_live() } else { sys.ledger.begin(node) };
        let peers =
            if tracing { sys.ledger.nodes().filter(|&x| x != node).collect() } else { Vec::new() };
        let seq = sys.alloc_seq(node);
        self.since_collect.push(snapshot);
        self.hush(snapshot)?;
        let slot = self.push_await(Expect::Begin { node, snapshot, peers });
        self.sys().observe(ObserverRequest::Begin { snapshot, node, seq }, slot)
    }

    /// A paused node other than `except`, if there is one.
    fn paused_other_than(&self, except: Option<NodeId>) -> Option<NodeId> {
        let paused = self.system.as_ref()?.ledger.paused();
        paused.into_iter().find(|&n| Some(n) != except)
    }

    /// `CollectState`. It waits for the observer's answer before the next command: a
    /// node that dies in a later command loses the records of the snapshots that are
    /// still to be gathered then, and those must not be the ones this line gathers.
    pub(super) fn collect_state(&mut self, line: usize, text: &str) -> Result<(), Fatal> {
        self.barrier()?;
        if !self.lost_snapshots.is_empty() {
            let why: Vec<String> = std::mem::take(&mut self.lost_snapshots)
                .into_iter()
                .map(|(k, n)| format!("snapshot {k} is lost: node {n} crashed after recording it"))
                .collect();
            self.reject(line, text, why.join("; "));
            return Ok(());
        }
        let down: Vec<String> = self
            .since_collect
            .clone()
            .into_iter()
            .filter_map(|k| {
                let sys = self.system.as_ref()?;
                let n = sys.ledger.members(k).into_iter().find(|&n| sys.ledger.is_down(n))?;
                Some(format!("snapshot {k} is not complete: node {n} is down"))
            })
            .collect();
        if !down.is_empty() {
            self.reject(line, text, down.join("; "));
            return Ok(());
        }
        // A stopped process answers nothing: the snapshot stays pending, for a
        // CollectState after the Resume.
        let paused: Vec<String> = self
            .since_collect
            .iter()
            .filter_map(|&k| {
                let sys = self.system.as_ref()?;
                let n = sys.ledger.members(k).into_iter().find(|&n| sys.ledger.is_paused(n))?;
                Some(format!("snapshot {k} cannot be gathered: node {n} is paused"))
            })
            .collect();
        if !paused.is_empty() {
            self.reject(line, text, paused.join("; "));
            return Ok(());
        }
        if self.since_collect.is_empty() {
            self.gathered.clear();
            return Ok(());
        }
        let ids = self.since_collect.clone();
        let sys = self.sys();
        let snapshots: Vec<(SnapshotId, Vec<NodeId>)> =
            ids.iter().map(|&k| (k, sys.ledger.members(k))).collect();
        // Only the snapshots' members are asked: a node that joined later recorded
        // nothing of them, and may be down.
        let members: BTreeSet<NodeId> = snapshots.iter().flat_map(|(_, m)| m).copied().collect();
        let seqs = members.into_iter().map(|n| (n, sys.alloc_seq(n))).collect();
        let slot = self.push_await(Expect::Collect { line, text: text.to_string(), ids });
        let wait = self.is_live();
        self.sys().observe(ObserverRequest::Collect { snapshots, seqs, wait }, slot)?;
        self.wait_slot(slot)
    }
}
