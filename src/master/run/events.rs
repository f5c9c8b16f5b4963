//! The master's side of the answers: waiting for them (barriers, slots), checking each
//! against the ledger, and writing finished slots out in command order.
//! A child of `run`: the same `Master`, its other concern.

use super::*;

/// How long a node on another host may stay silent before the line waiting on it reports
/// it unreachable (SPEC chapter 10).
const UNREACHABLE: Duration = Duration::from_secs(10);

impl Master {
    /// Waits until every command given has run (a node that was given commands it does
    /// not answer is asked something it does), every answer has come and every line is out.
    pub(super) fn barrier(&mut self) -> Result<(), Fatal> {
        let unanswered = self.system.as_mut().map_or(Vec::new(), |s| s.take_unanswered());
        for n in unanswered {
            if !self.is_down(n) {
                let slot = self.push_await(Expect::Settled);
                self.sys().command(n, Control::Query { tx: None }, slot)?;
            }
        }
        while self.system.as_ref().is_some_and(|s| s.owes_answers()) {
            self.wait_one()?;
        }
        self.emit_ready()
    }

    /// Blocks for at least one event, then takes every event already there.
    pub(super) fn wait_one(&mut self) -> Result<(), Fatal> {
        // Only answers (and a load's progress while no answer is owed) show that the
        // processes are not stuck: a load's progress must not hide a command that hangs.
        let mut left = self.watchdog.saturating_sub(self.heard.elapsed());
        let on_hosts = self.sys().on_hosts();
        if on_hosts {
            // SPEC chapter 10: a node on another host silent for 10 s is reported.
            left = left.min(UNREACHABLE.saturating_sub(self.heard.elapsed()));
        }
        match self.sys().next_event(left)? {
            Some(ev) => self.on_event(ev)?,
            None if on_hosts && self.report_unreachable() => {}
            None => {
                let sys = self.sys();
                let mut owed: Vec<String> = sys
                    .awaiting_node
                    .iter()
                    .filter(|(_, q)| !q.is_empty())
                    .map(|(n, q)| format!("node {n} owes {}", q.len()))
                    .collect();
                owed.sort();
                if !sys.awaiting_observer.is_empty() {
                    owed.push(format!("the observer owes {}", sys.awaiting_observer.len()));
                }
                let what = if owed.is_empty() { "a load".to_string() } else { owed.join(", ") };
                let secs = self.watchdog.as_secs();
                return Err(Fatal(format!(
                    "no process answered for {secs}s (waiting on {what}); giving up"
                )));
            }
        }
        self.drain_events()?;
        self.emit_ready()
    }

    /// After 10 s of silence on several hosts: the nodes this line waits on get `error:
    /// line N: node <id> unreachable` (on stderr; the exit status becomes 1), once per
    /// line, and the master goes on waiting: once a node is back, its answer comes and
    /// the run goes on, with the stdout it would have had. False when nothing new is to
    /// be reported (then the watchdog decides).
    fn report_unreachable(&mut self) -> bool {
        if self.heard.elapsed() < UNREACHABLE {
            return true; // the 10 s are not over: wait again
        }
        let reported = self.unreachable.clone();
        let owing: Vec<NodeId> = self
            .sys()
            .awaiting_node
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(n, _)| *n)
            .filter(|n| !reported.contains(n))
            .collect();
        if owing.is_empty() {
            return false;
        }
        for n in owing {
            let line = format!("error: line {}: node {n} unreachable", self.at_line);
            self.with_bar_hidden(|| {
                use std::io::Write;
                let _ = writeln!(io::stderr(), "{line}");
            });
            self.rejected = true;
            self.unreachable.insert(n);
        }
        // The watchdog starts over: a cut-off host may take a while to come back.
        self.heard = std::time::Instant::now();
        true
    }

    pub(super) fn drain_events(&mut self) -> Result<(), Fatal> {
        while let Some(ev) = self.system.as_ref().and_then(|s| s.inbox.try_recv().ok()) {
            self.on_event(ev)?;
        }
        Ok(())
    }

    pub(super) fn on_event(&mut self, ev: Event) -> Result<(), Fatal> {
        match ev {
            Event::Connected(link) => {
                log::warn!("master: unexpected connection from {}; dropped", link.peer())
            }
            Event::Frames { peer, msgs } => {
                for msg in msgs {
                    match (peer, msg) {
                        (Peer::Node(id), Message::Report { seq, report }) => {
                            self.on_report(id, seq, report)?
                        }
                        (Peer::Node(id), Message::LoadProgress(s)) => self.on_load(id, s, false),
                        (Peer::Node(id), Message::LoadDone(s)) => self.on_load(id, s, true),
                        (Peer::Node(_), Message::Decided { tx, outcome }) => {
                            self.record_outcome(tx, outcome)
                        }
                        (Peer::Observer, Message::ObserverReply(r)) => self.on_observer(r)?,
                        (peer, other) => {
                            log::warn!("master: unexpected {other:?} from {peer}; ignored")
                        }
                    }
                }
            }
            Event::Closed { peer: Peer::Node(n), .. } if self.sys().closed(n) => {}
            Event::Closed { peer, why } => {
                let why = why.map_or(String::new(), |w| format!(" ({w})"));
                return Err(Fatal(format!("{peer} exited unexpectedly{why}")));
            }
        }
        Ok(())
    }

    pub(super) fn take_slot(&mut self, id: u64) -> Result<Expect, Fatal> {
        let idx = id.checked_sub(self.first_slot).map(|i| i as usize);
        match idx.and_then(|i| self.slots.get_mut(i)) {
            Some(slot @ Slot::Await(_)) => match std::mem::replace(slot, Slot::Done(Vec::new())) {
                Slot::Await(e) => Ok(e),
                Slot::Done(_) => unreachable!("matched Await"),
            },
            _ => Err(Fatal(format!("an answer for command slot {id}, which waits for none"))),
        }
    }

    pub(super) fn fill(&mut self, id: u64, outs: Vec<Out>) {
        self.heard = std::time::Instant::now();
        let idx = (id - self.first_slot) as usize;
        self.slots[idx] = Slot::Done(outs);
    }

    pub(super) fn on_report(
        &mut self,
        node: NodeId,
        seq: u64,
        report: Report,
    ) -> Result<(), Fatal> {
        let queue = self.sys().awaiting_node.entry(node).or_default();
        let slot = match queue.front() {
            Some(&(s, slot)) if s == seq => {
                queue.pop_front();
                slot
            }
            // An answer to a command whose outcome the ledger predicted: the node
            // disagrees, so one of the two implementations of the rules is wrong.
            _ => {
                return Err(Fatal(format!(
                    "bug: node {node} answered {report:?} to its command {seq}, whose outcome \
                     the master's ledger predicted otherwise"
                )))
            }
        };
        let expect = self.take_slot(slot)?;
        let tracing = self.tracing();
        let mut outs = Vec::new();
        match (expect, report) {
            (Expect::Ready(trace), Report::Ready(None)) => {
                outs.extend(trace.into_iter().map(Out::Trace))
            }
            (Expect::Ready(_), Report::Ready(Some(r))) => self.apply_tx_report(node, r, &mut outs),
            (expect, Report::Crashed(r, costs)) => {
                self.add_costs(costs);
                // The node reached its armed crash point during this command.
                if let Expect::Deliver { from, to, predicted, print, .. } = expect {
                    if print {
                        outs.push(Out::Line(output::received(from, &predicted.msg)));
                    }
                    if tracing {
                        outs.push(Out::Trace(TraceEvent::Deliver { from, to, msg: predicted.msg }));
                    }
                }
                self.apply_tx_report(node, r, &mut outs);
                self.node_died(node, &mut outs);
            }
            (
                Expect::Deliver { from, to, predicted, print, peers },
                Report::Received { msg, recorded, tx },
            ) => {
                if msg != predicted.msg || recorded.is_some() != predicted.records {
                    return Err(Fatal(format!(
                        "bug: node {to} took {msg:?} (recorded: {recorded:?}) from {from}, \
                         but the ledger predicted {predicted:?}"
                    )));
                }
                if print {
                    outs.push(Out::Line(output::received(from, &msg)));
                }
                if tracing {
                    outs.push(Out::Trace(TraceEvent::Deliver { from, to, msg: msg.clone() }));
                    if let (Some(balance), ChannelMsg::Marker { snapshot }) = (recorded, &msg) {
                        outs.extend(
                            record_events(to, *snapshot, balance, &peers)
                                .into_iter()
                                .map(Out::Trace),
                        );
                    }
                }
                if let Some(r) = tx {
                    self.apply_tx_report(to, r, &mut outs);
                }
            }
            (Expect::TxStep { spec, nowait }, Report::TxStep(r)) => {
                let decided = r.decided.iter().find(|d| d.0 == spec.tx).map(|d| d.1);
                self.apply_tx_report(node, r, &mut outs);
                if nowait {
                    // Decided at once (the coordinator's own NO): the decision, not STARTED.
                    outs.push(Out::Line(match decided {
                        Some(outcome) => output::transfer(spec.tx, Some(outcome)),
                        None => output::transfer_started(spec.tx),
                    }));
                }
            }
            (Expect::TxRun { spec }, Report::TxStep(r)) => {
                let Some(&(tx, outcome)) = r.decided.iter().find(|d| d.0 == spec.tx) else {
                    return Err(Fatal(format!("bug: node {node} answered {} undecided", spec.tx)));
                };
                // The nodes finish it before their next command; a kill must wait for that.
                self.unsettled.extend(spec.participants());
                let ledger = &mut self.sys().ledger;
                if outcome == TxOutcome::Committed {
                    ledger.commit_driven(&spec);
                }
                // At its decision the coordinator's own part is final, unless it is paid
                // by a commit (its money is on the way).
                let final_here = outcome != TxOutcome::Committed || spec.delta(node) <= 0;
                if final_here && (ledger.balance(node), ledger.held(node)) != (r.balance, r.held) {
                    return Err(Fatal(format!(
                        "bug: after {tx} node {node} holds {} ({} held), the ledger says {} ({} held)",
                        r.balance,
                        r.held,
                        ledger.balance(node),
                        ledger.held(node)
                    )));
                }
                self.record_outcome(tx, outcome);
            }
            (Expect::Settled, Report::State { .. }) => {}
            (Expect::LiveSend, Report::Sent) => {}
            (Expect::LiveSend, Report::ErrSend) => {
                outs.push(Out::Line(output::ERR_SEND.to_string()))
            }
            (Expect::LiveTx { spec, nowait }, Report::TxStep(r)) => {
                outs.push(Out::Line(self.live_tx_line(spec, nowait, &r)?))
            }
            (Expect::Quiet, report @ Report::Quiet { .. }) => self.quiet.push((node, report)),
            (Expect::Query, Report::State { balance, held, tx, waiting }) => {
                self.queried.push((node, balance, held, tx));
                self.waiting.extend(waiting.into_iter().map(|t| (t, node)));
            }
            (Expect::Ended, Report::Ended(list)) => self.ended.push((node, list)),
            (Expect::Costs, Report::Costs(costs)) => self.add_costs(costs),
            (_, report) => {
                return Err(Fatal(format!("node {node} answered {report:?} unexpectedly")))
            }
        }
        self.fill(slot, outs);
        Ok(())
    }

    pub(super) fn on_observer(&mut self, reply: ObserverReply) -> Result<(), Fatal> {
        let slot = self
            .sys()
            .awaiting_observer
            .pop_front()
            .ok_or_else(|| Fatal("the observer answered a request it was not given".into()))?;
        let expect = self.take_slot(slot)?;
        let mut outs = Vec::new();
        match (expect, reply) {
            (Expect::Relinked, ObserverReply::Relinked) => {}
            (Expect::LiveBegun, ObserverReply::Started { .. }) => {}
            (Expect::LiveCheck, ObserverReply::Collected(snaps)) => {
                outs.push(Out::Line(self.live_check_line(&snaps)))
            }
            (Expect::Begin { node, snapshot, peers }, ObserverReply::Started { balance }) => {
                outs.push(Out::Line(output::started(node)));
                if self.tracing() {
                    outs.extend(
                        record_events(node, snapshot, balance, &peers).into_iter().map(Out::Trace),
                    );
                }
            }
            (Expect::Collect { ids, .. }, ObserverReply::Collected(snaps)) => {
                for s in &snaps {
                    let members: Vec<NodeId> = s.nodes.iter().map(|n| n.0).collect();
                    let created = self.sys().ledger.created_by(&members);
                    let held = s.total();
                    // A three-phase commit that split lost its credit: the snapshot shows
                    // the money missing, as `Check` names the split. Otherwise a snapshot
                    // that does not balance is a bug.
                    match held {
                        Some(h) if self.txns.three_pc_ran && h < created => log::warn!(
                            "master: snapshot {} holds {h} of the {created} its nodes created: \
                             a three-phase commit split lost the rest (Check names it)",
                            s.snapshot
                        ),
                        _ if held != Some(created) => {
                            return Err(Fatal(format!(
                                "bug: snapshot {} holds {held:?} but its nodes created {created}",
                                s.snapshot
                            )))
                        }
                        _ => {}
                    }
                }
                self.since_collect.retain(|k| !ids.contains(k));
                if self.tracing() {
                    let evs = snaps.iter().map(|s| TraceEvent::Collect { snapshot: s.snapshot });
                    outs.extend(evs.map(Out::Trace));
                }
                self.gathered = snaps;
            }
            (Expect::Collect { line, text, .. }, ObserverReply::NotComplete(list)) => {
                let why: Vec<String> = list
                    .iter()
                    .map(|inc| {
                        // A thousand nodes have a million channels: name the first ones.
                        const NAMED: usize = 100;
                        let mut chans: Vec<String> = inc
                            .open
                            .iter()
                            .take(NAMED)
                            .map(|(s, d)| format!("{s} -> {d}"))
                            .collect();
                        if inc.open.len() > NAMED {
                            chans.push(format!("and {} more", inc.open.len() - NAMED));
                        }
                        format!(
                            "snapshot {} is not complete: channels still open: {}",
                            inc.snapshot,
                            chans.join(", ")
                        )
                    })
                    .collect();
                outs.push(Out::Error(format!("error: line {line}: {text}: {}", why.join("; "))));
                self.rejected = true;
            }
            (_, reply) => {
                return Err(Fatal(format!("the observer answered {reply:?} unexpectedly")))
            }
        }
        self.fill(slot, outs);
        Ok(())
    }

    /// Writes out every finished slot at the front of the queue.
    pub(super) fn emit_ready(&mut self) -> Result<(), Fatal> {
        while let Some(Slot::Done(_)) = self.slots.front() {
            let Some(Slot::Done(outs)) = self.slots.pop_front() else { unreachable!() };
            self.first_slot += 1;
            for out in outs {
                match out {
                    Out::Line(l) => {
                        if let Some(w) = self.web.as_mut() {
                            w.output(&l, false);
                        }
                        self.stdout.write_all(l.as_bytes()).map_err(stdout_gone)?;
                        if !l.ends_with('\n') {
                            self.stdout.write_all(b"\n").map_err(stdout_gone)?;
                        }
                        if self.bar_shown() {
                            // On a terminal the line must not land inside the bar.
                            let stdout = &mut self.stdout;
                            let live = self.live.as_ref();
                            let bar = live.and_then(|l| l.load.as_ref()).and_then(|r| r.bar());
                            let flushed = match bar {
                                Some(bar) => bar.suspend(|| stdout.flush()),
                                None => stdout.flush(),
                            };
                            flushed.map_err(stdout_gone)?;
                        }
                    }
                    Out::Error(e) => {
                        if let Some(w) = self.web.as_mut() {
                            w.output(&e, true);
                        }
                        self.stdout.flush().map_err(stdout_gone)?;
                        self.with_bar_hidden(|| {
                            let _ = writeln!(io::stderr(), "{e}");
                        });
                    }
                    Out::Trace(ev) => {
                        let json = ev.to_json();
                        if let Some(w) = self.web.as_mut() {
                            w.trace(&json);
                        }
                        if let Some(t) = self.trace.as_mut() {
                            writeln!(t, "{json}")
                                .map_err(|e| Fatal(format!("cannot write the trace: {e}")))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
pub(super) fn stdout_gone(e: io::Error) -> Fatal {
    Fatal(format!("cannot write standard output: {e}"))
}
