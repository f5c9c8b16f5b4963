//! The node's commands: each `Control` of the master or the observer run against the
//! branch, and the effects of every step carried out in order (records, messages, crash
//! points, decisions). A child of the node driver: the same `Node`, its other concern.

use super::*;

impl Node {
    /// Runs one command; `None` when its answer comes later (a driven `Transfer`).
    pub(super) fn execute(
        &mut self,
        cmd: Control,
        from: Peer,
        seq: u64,
    ) -> io::Result<Option<Report>> {
        let mut out = std::mem::take(&mut self.effects);
        let mut later = false;
        let report = match cmd {
            Control::Setup { peers, join, down, resend, live } => {
                self.set_live(live);
                for &p in peers.iter().filter(|p| !down.contains(p)) {
                    let name = self.book.address(Peer::Node(p))?;
                    self.connect(Peer::Node(p), &name)?;
                    if live {
                        self.start_resync(p);
                    }
                }
                self.gone.extend(down.iter().copied());
                let name = self.book.address(Peer::Observer)?;
                self.connect(Peer::Observer, &name)?;
                self.branch.on_setup(&peers, &join, &mut out);
                // Written now, ahead of what recovery sends, and not reported as new.
                for (to, msgs) in resend {
                    for msg in msgs {
                        self.send_to_peer(to, msg)?;
                    }
                }
                if self.restarted {
                    out.append(&mut self.recovery);
                    Report::Ready(Some(self.tx_report(&out)))
                } else {
                    Report::Ready(None)
                }
            }
            Control::AddPeer { peer, join } => {
                self.branch.on_add_peer(peer, &join, &mut out);
                Report::Ready(None)
            }
            Control::Send { to, amount, .. } => match self.branch.on_send(to, amount, &mut out) {
                Ok(()) => Report::Sent,
                Err(_) => Report::ErrSend,
            },
            Control::Receive { from, .. } => {
                let msg = self
                    .arrived
                    .get_mut(&from)
                    .and_then(|q| q.pop_front())
                    .expect("can_run checked the channel");
                let commit = matches!(msg, ChannelMsg::Commit(_));
                let recorded = self.branch.on_deliver(from, msg.clone(), &mut out);
                let tx = commit.then(|| self.tx_report(&out));
                Report::Received { msg, recorded, tx }
            }
            Control::Transfer { spec, drive, protocol } if self.live => {
                // Answered at the decision (unless `nowait`, or decided at once).
                self.branch.on_start(&spec, protocol, &mut out);
                let report = self.tx_report(&out);
                if drive && !report.decided.iter().any(|d| d.0 == spec.tx) {
                    self.asks.insert(spec.tx, (from, seq));
                    later = true;
                }
                Report::TxStep(report)
            }
            Control::Transfer { spec, drive, protocol } => {
                self.branch.on_start(&spec, protocol, &mut out);
                if drive {
                    // Whoever gets a Prepare follows: told first, on the same link.
                    for e in &out {
                        if let Effect::Send { to, msg: ChannelMsg::Commit(m) } = e {
                            if !matches!(m, CommitMsg::TwoPc(TwoPcMsg::Prepare { .. })) {
                                continue;
                            }
                            if let Some(link) = self.links.get_mut(&Peer::Node(*to)) {
                                link.push(&Message::Drive { tx: spec.tx });
                            }
                        }
                    }
                    // The answer comes from answer_pending, once decided (maybe below).
                    let (tx, me) = (spec.tx, self.branch.id());
                    let peer = spec.participants().find(|&p| p != me).unwrap_or(me);
                    self.pending = Some(Pending { asker: from, seq, tx, peer, answered: false });
                }
                Report::TxStep(self.tx_report(&out))
            }
            Control::Discard { from } => {
                let lost = self.arrived.get_mut(&from).and_then(|q| q.pop_front());
                log::info!("node {}: lost {lost:?} from {from}", self.branch.id());
                Report::Ready(None)
            }
            Control::ArmCrash { point } => {
                self.armed = Some(point);
                Report::Ready(None)
            }
            Control::Resend { to, msgs, .. } => {
                for msg in msgs {
                    out.push(Effect::Send { to, msg });
                }
                Report::Ready(None)
            }
            Control::Timeout { tx, reason, reach } => {
                self.branch.on_timeout(tx, reason, &reach, &mut out);
                Report::TxStep(self.tx_report(&out))
            }
            Control::Ended => Report::Ended(self.branch.ended()),
            Control::Costs => Report::Costs(std::mem::take(&mut self.costs)),
            Control::Query { tx } => Report::State {
                balance: self.branch.balance(),
                held: self.branch.held(),
                tx: tx.map(|t| self.branch.state(t)),
                waiting: self.branch.waiting(),
            },
            Control::BeginSnapshot { snapshot } => {
                let balance = self.branch.on_begin_snapshot(snapshot, &mut out);
                Report::Recorded { balance }
            }
            Control::Collect { snapshots, .. } => {
                Report::Collected(self.branch.collect(&snapshots))
            }
            Control::Live { on } => {
                self.set_live(on);
                if on {
                    // What arrived under scripted delivery is delivered now, in channel order.
                    let mut peers: Vec<NodeId> = self.arrived.keys().copied().collect();
                    peers.sort();
                    for p in peers {
                        while let Some(m) = self.arrived.get_mut(&p).and_then(|q| q.pop_front()) {
                            self.deliver_live(p, m)?;
                        }
                    }
                }
                Report::Ready(None)
            }
            Control::Load { ops, kind, seed, load, protocol } => {
                self.start_load(from, ops, kind, seed, load, protocol);
                Report::Ready(None)
            }
            Control::Quiet => self.quiet(),
        };
        self.apply(&mut out, Some((from, seq)))?;
        self.effects = out;
        if later {
            return Ok(None);
        }
        if self.pending.is_some() {
            // This command started it (none runs while one is pending): answered later.
            self.answer_pending()?;
            return Ok(None);
        }
        Ok(Some(report))
    }

    /// Carries out a step's effects in order, and empties `out`. `cmd` is the command
    /// that took the step, if one did: the one a crash point reports to.
    pub(super) fn apply(
        &mut self,
        out: &mut Vec<Effect>,
        cmd: Option<(Peer, u64)>,
    ) -> io::Result<()> {
        // Transactions whose forced records this step wrote: one forced write each.
        let mut forced: Vec<TxnId> = Vec::new();
        // The protocol of the last transaction that sent: a step's messages are mostly one
        // transaction's, so the cost counting looks it up once.
        let mut sender: Option<(TxnId, usize)> = None;
        for i in 0..out.len() {
            match &out[i] {
                &Effect::Point(p) if self.armed == Some(p) => {
                    let report = self.tx_report(&out[..i]);
                    self.die(cmd, report);
                }
                Effect::Send { to, msg } => {
                    let (to, msg) = (*to, msg.clone());
                    if let ChannelMsg::Commit(m) = &msg {
                        let p = match sender {
                            Some((tx, p)) if tx == m.tx() => p,
                            _ => self.protocol_of(m.tx()),
                        };
                        sender = Some((m.tx(), p));
                        self.costs[p].messages += 1;
                    }
                    self.send_to_peer(to, msg)?
                }
                Effect::Log { rec, force } => {
                    let (rec, force) = (rec.clone(), force.forced());
                    if let Record::Sent { to, amount } = rec {
                        self.sent.entry(to).or_default().push(amount);
                    }
                    if let Some(tx) = rec.tx().filter(|t| force && !forced.contains(t)) {
                        forced.push(tx);
                    }
                    self.wal.append(&rec).map_err(io_err)?;
                    // Synced by the next flush, before any message leaves. A durable
                    // node (several hosts) forces every record: a host that loses power
                    // then loses nothing another process was told (group commit: one
                    // sync per flush, whatever the number of records).
                    self.sync_due |= force || self.durable;
                }
                &Effect::Decided { tx, outcome } => self.decisions.push((tx, outcome)),
                Effect::Dropped { tx, amount } => {
                    log::info!("{tx}: its credit of {amount} came after this node aborted it")
                }
                Effect::Point(_) => {}
            }
        }
        for tx in forced {
            self.costs[self.protocol_of(tx)].forced += 1;
        }
        out.clear();
        if !self.decisions.is_empty() {
            self.on_decisions()?;
        }
        Ok(())
    }

    /// What the effects of a two-phase-commit step mean for the master.
    pub(super) fn tx_report(&self, out: &[Effect]) -> TxReport {
        let mut report = TxReport {
            sent: Vec::new(),
            decided: Vec::new(),
            balance: self.branch.balance(),
            held: self.branch.held(),
            dropped: Vec::new(),
        };
        for e in out {
            match e {
                Effect::Send { to, msg: ChannelMsg::Commit(m) } => {
                    report.sent.push((*to, m.clone()))
                }
                Effect::Decided { tx, outcome } => report.decided.push((*tx, *outcome)),
                Effect::Dropped { tx, amount } => report.dropped.push((*tx, *amount)),
                _ => {}
            }
        }
        report
    }

    /// The index (in `Protocol::ALL`) of the protocol `tx` runs by here.
    fn protocol_of(&self, tx: TxnId) -> usize {
        self.branch.protocol(tx).unwrap_or_default().index()
    }
}
